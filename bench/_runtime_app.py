"""The apps bench/runtime.py loads: a FastAPI hello-world and the fixed newsroom stream.

`HD_BENCH_MODE` picks what runs inside the server:
  none       nothing
  watchdog   hangdoctor's LoopWatchdog (started in the lifespan)
  full       the watchdog plus HangdoctorMiddleware
  aiodebug   aiodebug's slow-callback logging (asyncio debug mode is the
             PYTHONASYNCIODEBUG=1 environment variable, set by the benchmark)
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
    if MODE == "aiodebug":
        from aiodebug import log_slow_callbacks

        log_slow_callbacks.enable(THRESHOLD)
    yield


inner = FastAPI(lifespan=_lifespan)


@inner.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


inner.include_router(stream_fixed.router)

app: Any = inner
if MODE == "full":
    app = HangdoctorMiddleware(inner, watchdog=LoopWatchdog(THRESHOLD))
