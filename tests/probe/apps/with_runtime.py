"""An app that runs the hangdoctor runtime with its metrics on /metrics, and can be stalled.

`GET /block` calls `time.sleep(RUNTIME_BLOCK_S)` on the loop: one stall the
watchdog (threshold 0.25 s) reports under its catalog code, while the probe
times /health from outside and scrapes /metrics from inside.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.process_collector import ProcessCollector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog
from hangdoctor.runtime.metrics import HangdoctorMetrics

BLOCK_S = float(os.environ.get("RUNTIME_BLOCK_S", "1.2"))
registry = CollectorRegistry()
ProcessCollector(registry=registry)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def block(request: Request) -> Response:
    time.sleep(BLOCK_S)  # the stall the test provokes, on the loop
    return JSONResponse({"slept": BLOCK_S})


async def ticks() -> AsyncIterator[str]:
    n = 0
    while True:
        n += 1
        yield f"data: tick {n}\n\n"
        await asyncio.sleep(0.1)


async def stream(request: Request) -> Response:
    return StreamingResponse(ticks(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/block", block),
        Route("/stream", stream),
        Mount("/metrics", make_asgi_app(registry)),
    ]
)
app.add_middleware(
    HangdoctorMiddleware,
    watchdog=LoopWatchdog(0.25),
    observer=HangdoctorMetrics(registry),
)
