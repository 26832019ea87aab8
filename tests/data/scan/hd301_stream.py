# ruff: noqa
"""HD301: streaming generators that never look at the client."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from sse_starlette.sse import EventSourceResponse
from starlette.responses import StreamingResponse as StarletteStreaming


async def ticker() -> AsyncIterator[str]:
    n = 0
    while True:  # error: HD301
        n += 1
        yield f"data: {n}\n\n"
        await asyncio.sleep(1)


async def careful(request: Request) -> AsyncIterator[str]:
    while not await request.is_disconnected():
        yield "data: x\n\n"
        await asyncio.sleep(1)


async def with_cleanup() -> AsyncIterator[str]:
    try:
        while True:
            yield "data: x\n\n"
            await asyncio.sleep(1)
    finally:
        print("cleaned up")


async def forwarder(source: AsyncIterator[str]) -> AsyncIterator[str]:
    async for item in source:  # forwards a stream: the source owns the work
        yield item


async def finite() -> AsyncIterator[str]:
    for word in ["a", "b"]:
        yield word


async def paced() -> AsyncIterator[str]:
    for i in range(1000):  # error: HD301
        await asyncio.sleep(1)
        yield str(i)


async def routes(request: Request) -> object:
    StreamingResponse(ticker(), media_type="text/event-stream")
    StreamingResponse(careful(request))
    StarletteStreaming(with_cleanup())
    EventSourceResponse(forwarder(ticker()))
    StreamingResponse(finite())
    gen = paced()
    return EventSourceResponse(gen)


async def never_streamed() -> AsyncIterator[str]:
    while True:  # not handed to a streaming response: not reported
        yield "x"
        await asyncio.sleep(1)


def sync_route() -> StreamingResponse:
    async def local() -> AsyncIterator[bytes]:
        while True:  # error: HD301
            yield b"x"
            await asyncio.sleep(1)

    return StreamingResponse(content=local())
