"""The apps bench/runtime.py loads: a FastAPI hello-world and the fixed newsroom stream.

`HD_BENCH_MODE` picks what runs inside the server:
  none       nothing
  watchdog   hangdoctor's LoopWatchdog (started in the lifespan)
  full       the watchdog plus HangdoctorMiddleware
  aiodebug   aiodebug's slow-callback logging
  asyncio-debug  asyncio's debug mode: uvicorn passes debug=False to asyncio.run,
             so PYTHONASYNCIODEBUG=1 alone does nothing under it; the lifespan
             turns it on with loop.set_debug(True), as the variable would elsewhere
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "newsroom"))

from api.routes import stream_fixed  # noqa: E402

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog  # noqa: E402

MODE = os.environ.get("HD_BENCH_MODE", "none")
THRESHOLD = 0.25


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    if MODE == "watchdog":
        async with LoopWatchdog(THRESHOLD):
            yield
        return
    if MODE == "asyncio-debug":
        import asyncio

        asyncio.get_running_loop().set_debug(True)
    if MODE == "aiodebug":
        from aiodebug import log_slow_callbacks

        log_slow_callbacks.enable(THRESHOLD)
    yield


inner = FastAPI(lifespan=_lifespan)


@inner.get("/mode")
async def mode() -> dict[str, object]:
    """What this server runs: the benchmark checks it before it trusts a figure."""
    import asyncio

    return {"mode": MODE, "asyncio_debug": asyncio.get_running_loop().get_debug()}


@inner.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


inner.include_router(stream_fixed.router)

app: Any = inner
if MODE == "full":
    app = HangdoctorMiddleware(inner, watchdog=LoopWatchdog(THRESHOLD))
