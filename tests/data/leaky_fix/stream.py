"""/news/stream with yesterday's HD101 fix: it no longer freezes, but it leaks threads.

Kept as the control of the thread-count tests: an executor per stream shut down
with wait=False leaves one worker thread behind per dropped stream for as long
as the upstream call runs.

The executor is created outside a `with` block, pending futures are cancelled
when the client disconnects, and `shutdown(wait=False, cancel_futures=True)`
runs in `finally`: the running upstream call finishes in the background and
the event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

router = APIRouter()


def fetch_news() -> str:
    delay = float(os.environ.get("NEWSROOM_UPSTREAM_DELAY", "15"))
    time.sleep(delay)  # the slow upstream call
    return f"headline at {time.strftime('%H:%M:%S')}"


@router.get("/news/stream")
async def news_stream() -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        yield "event: hello\ndata: connected\n\n"
        ex = ThreadPoolExecutor(max_workers=2)
        pending: set[asyncio.Future[str]] = set()
        try:
            while True:
                fut = loop.run_in_executor(ex, fetch_news)
                pending.add(fut)
                item = await fut
                pending.discard(fut)
                yield f"data: {item}\n\n"
        finally:
            for fut in pending:
                fut.cancel()
            ex.shutdown(wait=False, cancel_futures=True)  # never join on the loop

    return StreamingResponse(gen(), media_type="text/event-stream")
