# ruff: noqa
"""HD302: async generators that swallow cancellation."""

import asyncio
import contextlib
from asyncio import CancelledError
from collections.abc import AsyncIterator


async def swallow() -> AsyncIterator[str]:
    while True:
        try:
            yield await asyncio.sleep(1, "x")
        except asyncio.CancelledError:  # error: HD302
            print("client left")


async def base_exception() -> AsyncIterator[int]:
    try:
        await asyncio.sleep(1)
        yield 1
    except BaseException:  # error: HD302
        return


async def bare() -> AsyncIterator[int]:
    try:
        yield 1
    except:  # noqa: E722  # error: HD302
        pass


async def in_tuple() -> AsyncIterator[int]:
    try:
        yield 1
    except (ValueError, CancelledError):  # error: HD302
        pass


async def suppressed() -> AsyncIterator[int]:
    with contextlib.suppress(asyncio.CancelledError):  # error: HD302
        await asyncio.sleep(1)
        yield 1


async def fine() -> AsyncIterator[int]:
    try:
        yield 1
    except asyncio.CancelledError:
        print("bye")
        raise
    try:
        yield 2
    except Exception:  # does not catch cancellation
        pass
    try:
        int("x")  # nothing to cancel in here
    except BaseException:
        pass


async def not_a_generator() -> None:
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:  # a plain coroutine: not a streaming generator
        pass
