# ruff: noqa
"""HD201: time.sleep in async code, through every way of importing it."""

import asyncio
import time
import time as t
from time import sleep
from time import sleep as nap

import anyio


async def plain() -> None:
    time.sleep(1)  # error: HD201
    t.sleep(0.5)  # error: HD201
    sleep(2)  # error: HD201
    nap(3)  # error: HD201


async def generator():
    while True:
        yield 1
        time.sleep(1)  # error: HD201


async def in_expressions() -> list[None]:
    return [time.sleep(0.1) for _ in range(3)]  # error: HD201


async def fine() -> None:
    await asyncio.sleep(1)
    await anyio.sleep(1)
    await asyncio.to_thread(time.sleep, 1)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, time.sleep, 1)
    await loop.run_in_executor(None, lambda: time.sleep(1))
    callback = lambda: time.sleep(1)  # noqa: E731  # a lambda runs when called, elsewhere
    await asyncio.to_thread(callback)
    time.monotonic()


def sync_sleep() -> None:
    time.sleep(1)


async def shadowed(time: object) -> None:
    time.sleep(1)  # `time` is a parameter here, not the module


async def outer() -> None:
    def inner() -> None:
        time.sleep(1)  # a nested sync function: not async code

    class Local:
        def method(self) -> None:
            time.sleep(1)

    await asyncio.to_thread(inner)
    await asyncio.to_thread(Local().method)


async def local_import() -> None:
    from time import sleep as zzz

    zzz(1)  # error: HD201
