"""An app whose streams block the loop often, each time briefly: `time.sleep(0.05)` per event.

No single call is long, yet with ten or twenty streams open the loop is in one
of those sleeps most of the time and every health request queues behind them.
SHORT_BLOCK_S and SHORT_PAUSE_S set the length of each block and the pause
(a real await) between two events of one stream.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BLOCK_S = float(os.environ.get("SHORT_BLOCK_S", "0.05"))
PAUSE_S = float(os.environ.get("SHORT_PAUSE_S", "0.2"))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ticks() -> AsyncIterator[str]:
    n = 0
    while True:
        time.sleep(BLOCK_S)  # the short blocking call, on the loop
        n += 1
        yield f"data: tick {n}\n\n"
        await asyncio.sleep(PAUSE_S)


async def stream(request: Request) -> Response:
    return StreamingResponse(ticks(), media_type="text/event-stream")


app = Starlette(routes=[Route("/health", health), Route("/stream", stream)])
