"""/news/stream with hangdoctor.executors: the bounded HD101 fix in a few lines.

One `LoopSafeExecutor` serves the whole application: the router's lifespan
creates it at startup and closes it at the end (pending jobs cancelled,
`shutdown(wait=False, cancel_futures=True)`), so the loop never joins a worker
and the threads stay at most UPSTREAM_WORKERS however many streams are dropped.
`stream_until_disconnect` ends a stream when the client leaves (the server
cancels the response, or `request.is_disconnected()` says so), cancels the jobs
that stream started and closes the generator; the pool stays open for the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from api.routes.stream_fixed import UPSTREAM_WORKERS, fetch_news  # the same slow upstream
from hangdoctor.executors import LoopSafeExecutor, stream_until_disconnect


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with LoopSafeExecutor(UPSTREAM_WORKERS, thread_name_prefix="upstream") as ex:
        app.state.upstream_executor = ex
        yield


router = APIRouter(lifespan=lifespan)


@router.get("/news/stream")
async def news_stream(request: Request) -> StreamingResponse:
    ex: LoopSafeExecutor = request.app.state.upstream_executor

    async def gen() -> AsyncIterator[str]:
        yield "event: hello\ndata: connected\n\n"
        while True:
            item = await ex.run(fetch_news)
            yield f"data: {item}\n\n"

    body = stream_until_disconnect(gen(), is_disconnected=request.is_disconnected, executor=ex)
    return StreamingResponse(body, media_type="text/event-stream")
