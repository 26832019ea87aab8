"""An SSE route whose generator owns a thread pool (the canonical HD101 hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

router = APIRouter()


def fetch_news() -> str:
    time.sleep(15)  # the slow upstream call
    return "headline"


@router.get("/news/stream")
async def news_stream() -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        yield "event: hello\ndata: connected\n\n"
        # one pool per stream
        while True:
            item = await loop.run_in_executor(None, fetch_news)
            yield f"data: {item}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")
