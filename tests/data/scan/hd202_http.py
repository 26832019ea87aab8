# ruff: noqa
"""HD202: synchronous HTTP clients in async code."""

import asyncio
import http.client
import typing
import urllib.request
from typing import Annotated, Optional, Union
from urllib import request as urlreq
from urllib.request import urlopen

import aioboto3
import boto3
import httpx
import requests
import urllib3
from requests import Session

client = httpx.Client()
shared = requests.Session()
maybe_client: Optional[httpx.Client] = None
s3 = boto3.client("s3")


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


async def every_verb(url: str) -> None:
    httpx.head(url)  # error: HD202
    httpx.options(url)  # error: HD202
    httpx.put(url)  # error: HD202
    requests.head(url)  # error: HD202
    requests.options(url)  # error: HD202
    requests.request("GET", url)  # error: HD202
    client.head(url)  # error: HD202
    client.options(url)  # error: HD202
    client.stream("GET", url)  # error: HD202
    client.close()  # error: HD202
    maybe_client.get(url)  # error: HD202


async def annotated(
    a: Optional[httpx.Client],
    b: "httpx.Client | None",
    c: Union[httpx.Client, None],
    d: Annotated[httpx.Client, "metadata"],
    e: typing.Optional[Annotated[requests.Session, 1]],
    pool: urllib3.PoolManager,
    conn_pool: "urllib3.HTTPSConnectionPool",
    async_client: Optional[httpx.AsyncClient],
) -> None:
    a.get("/")  # error: HD202
    b.post("/")  # error: HD202
    c.delete("/")  # error: HD202
    d.send(None)  # error: HD202
    e.patch("/")  # error: HD202
    pool.request("GET", "/")  # error: HD202
    pool.urlopen("GET", "/")  # error: HD202
    pool.request_encode_body("POST", "/")  # error: HD202
    conn_pool.request("GET", "/")  # error: HD202
    pool.connection_from_url("http://x")  # finds a pool in memory
    await async_client.get("/")


async def aws(bucket: str) -> None:
    s3.get_object(Bucket=bucket, Key="k")  # error: HD202
    boto3.client("sqs").send_message(QueueUrl="q", MessageBody="m")  # error: HD202
    session = boto3.Session()
    ddb = session.client("dynamodb")  # making a client sends nothing
    ddb.put_item(TableName="t", Item={})  # error: HD202
    ddb.get_waiter("table_exists").wait(TableName="t")  # error: HD202
    s3.generate_presigned_url("get_object", Params={"Bucket": bucket})  # signs locally
    s3.get_paginator("list_objects_v2")
    async with aioboto3.Session().client("s3") as as3:
        await as3.get_object(Bucket=bucket, Key="k")
    await asyncio.to_thread(s3.get_object, Bucket=bucket, Key="k")
    await asyncio.to_thread(lambda: s3.get_object(Bucket=bucket, Key="k"))

    def in_a_thread() -> None:
        s3.put_object(Bucket=bucket, Key="k", Body=b"")

    await asyncio.to_thread(in_a_thread)
