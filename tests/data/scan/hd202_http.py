# ruff: noqa
"""HD202: synchronous HTTP clients in async code."""

import http.client
import urllib.request
from urllib import request as urlreq
from urllib.request import urlopen

import httpx
import requests
from requests import Session

client = httpx.Client()
shared = requests.Session()


async def module_functions(url: str) -> None:
    requests.get(url, timeout=5)  # error: HD202
    requests.post(url, json={})  # error: HD202
    urllib.request.urlopen(url)  # error: HD202
    urlopen(url)  # error: HD202
    urlreq.urlopen(url)  # error: HD202
    httpx.get(url)  # error: HD202


async def sessions(url: str) -> None:
    requests.Session().get(url)  # error: HD202
    s = requests.Session()
    s.put(url, data=b"")  # error: HD202
    with Session() as session:
        session.delete(url)  # error: HD202
    shared.get(url)  # error: HD202
    client.post(url)  # error: HD202
    made = requests.session()
    made.head(url)  # error: HD202


async def connections() -> int:
    conn = http.client.HTTPSConnection("example.org")
    conn.request("GET", "/")  # error: HD202
    return conn.getresponse().status  # error: HD202


async def unknown_objects(opener: object, pool: object) -> None:
    opener.urlopen("http://x")  # error: HD202
    pool.getresponse()  # error: HD202


async def fine(url: str) -> None:
    async with httpx.AsyncClient() as ac:
        await ac.get(url)
        async with ac.stream("GET", url) as r:
            await r.aread()
    params = {"q": 1}
    params.get("q")  # a dict's .get()
    headers = requests.structures.CaseInsensitiveDict()
    headers.get("a")


def sync_fetch(url: str) -> str:
    return requests.get(url, timeout=5).text
