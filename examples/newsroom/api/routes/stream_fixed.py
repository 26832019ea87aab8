"""/news/stream, fixed: aborting a stream no longer freezes the service, nor leaks a thread.

One thread pool serves every stream of the application: it is created at
startup with a fixed size and shut down at the end of the lifespan with
`shutdown(wait=False, cancel_futures=True)`, so the loop never joins a worker.
A client that disconnects cancels the stream's await, which cancels its job if
the job is still queued; a job already running finishes on its pool thread. The
number of threads stays at most UPSTREAM_WORKERS however many streams are
dropped (a pool per stream left one thread behind for each). A real upstream
call also takes a timeout: it bounds how long a worker stays busy after its
client has gone.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

UPSTREAM_WORKERS = 4  # upstream calls the whole application runs at once


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = ThreadPoolExecutor(max_workers=UPSTREAM_WORKERS, thread_name_prefix="upstream")
    app.state.upstream_pool = pool
    try:
        yield
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never join on the loop


router = APIRouter(lifespan=lifespan)


def fetch_news() -> str:
    delay = float(os.environ.get("NEWSROOM_UPSTREAM_DELAY", "15"))
    time.sleep(delay)  # the slow upstream call (a real one: httpx.get(url, timeout=5.0))
    return f"headline at {time.strftime('%H:%M:%S')}"


@router.get("/news/stream")
async def news_stream(request: Request) -> StreamingResponse:
    pool: ThreadPoolExecutor = request.app.state.upstream_pool

    async def gen() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        yield "event: hello\ndata: connected\n\n"
        while not await request.is_disconnected():
            # a disconnect cancels this await, and with it the job if it has not started
            item = await loop.run_in_executor(pool, fetch_news)
            yield f"data: {item}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")
