"""An SSE app served bare (`bare`) and behind HangdoctorMiddleware (`wrapped`).

The stream mixes line endings, multi-byte UTF-8, comments, an empty event and
a chunk split mid-line, with pauses between chunks: what the client reads must
be the same bytes, at the same moments, either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from hangdoctor.runtime import HangdoctorMiddleware

CHUNKS: tuple[bytes, ...] = (
    b": comment line\r\n\r\n",
    b"event: hello\ndata: caf\xc3\xa9 \xe2\x98\x95\n\n",
    b"data: split ",
    b"across chunks\r\n\r\n",
    b"data:\n\n",
    b'id: 7\nretry: 1500\ndata: {"n": 1}\n\n',
)
PAUSE_S = 0.3


async def events() -> AsyncIterator[bytes]:
    for chunk in CHUNKS:
        yield chunk
        await asyncio.sleep(PAUSE_S)


async def stream(request: object) -> StreamingResponse:
    return StreamingResponse(events(), media_type="text/event-stream")


async def health(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _routes() -> list[Route]:
    return [Route("/events", stream), Route("/health", health)]


bare = Starlette(routes=_routes())
wrapped = HangdoctorMiddleware(Starlette(routes=_routes()))
