# ruff: noqa
"""Where code runs: nested functions, lambdas, offloading, shadowing, sync helpers."""

import asyncio
import functools
import time

import anyio
import requests


def fetch(url: str) -> str:
    return requests.get(url, timeout=5).text


def load(url: str) -> str:
    return fetch(url)


def recursive(n: int) -> None:
    if n:
        recursive(n - 1)
    time.sleep(1)


def gen_sync():
    yield fetch("x")


async def through_helpers(url: str) -> None:
    load(url)  # error: HD202
    recursive(3)  # error: HD201
    await asyncio.to_thread(load, url)
    await anyio.to_thread.run_sync(load, url)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, functools.partial(load, url))
    await loop.run_in_executor(None, lambda: load(url))
    for item in gen_sync():  # error: HD202
        print(item)


async def nested_sync_called() -> None:
    def helper() -> None:
        time.sleep(1)

    helper()  # error: HD201


async def nested_async() -> None:
    async def inner() -> None:
        time.sleep(1)  # error: HD201

    await inner()


def sync_only() -> None:
    load("x")  # sync calling sync: nothing runs on the loop here
