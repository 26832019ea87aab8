"""/news/stream: the canonical hang (HD101).

The SSE generator owns a `with ThreadPoolExecutor()` block. When the client
disconnects, the generator is cancelled, `__exit__` runs `shutdown(wait=True)`
on the event-loop thread and joins the worker still inside `fetch_news`: every
request, /health included, waits for the slow upstream call.
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
        with ThreadPoolExecutor(max_workers=2) as ex:
            while True:
                item = await loop.run_in_executor(ex, fetch_news)
                yield f"data: {item}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")
