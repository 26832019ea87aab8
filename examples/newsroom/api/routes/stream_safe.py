"""/news/stream with hangdoctor.executors: the HD101 fix in a few lines.

`LoopSafeExecutor` replaces `with ThreadPoolExecutor()`: closing it cancels the
pending upstream calls and shuts the pool down with
`shutdown(wait=False, cancel_futures=True)`, so it never joins a worker on the
event loop. `stream_until_disconnect` ends the stream when the client leaves
(the server cancels the response, or `request.is_disconnected()` says so) and
then closes the executor and the generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.routes.stream_fixed import fetch_news  # the same slow upstream call
from hangdoctor.executors import LoopSafeExecutor, stream_until_disconnect

router = APIRouter()


@router.get("/news/stream")
async def news_stream(request: Request) -> StreamingResponse:
    ex = LoopSafeExecutor(max_workers=2)

    async def gen() -> AsyncIterator[str]:
        yield "event: hello\ndata: connected\n\n"
        while True:
            item = await ex.run(fetch_news)
            yield f"data: {item}\n\n"

    body = stream_until_disconnect(gen(), is_disconnected=request.is_disconnected, executor=ex)
    return StreamingResponse(body, media_type="text/event-stream")
