import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import requests


async def value_use():
    return time.sleep(1) or "late"


async def unknown_future(fut):
    return fut.result()


async def used_after():
    with ThreadPoolExecutor() as ex:
        await asyncio.get_running_loop().run_in_executor(ex, print)
    ex.submit(print)


async def fire_and_forget(jobs):
    with ThreadPoolExecutor() as ex:
        for job in jobs:
            ex.submit(job)


async def no_name():
    with ThreadPoolExecutor():
        pass


def sync_route():
    time.sleep(1)


async def unsafe_not_asked():
    return requests.get("https://example.invalid", timeout=5)


async def waits():
    lam = lambda: time.sleep(1)  # noqa: E731
    return lam
