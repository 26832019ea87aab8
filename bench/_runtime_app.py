"""The apps bench/runtime.py loads: a FastAPI hello-world and the fixed newsroom stream.

`HD_BENCH_MODE` picks what runs inside the server:
  none       nothing
  watchdog   hangdoctor's LoopWatchdog (started in the lifespan)
  full       the watchdog plus HangdoctorMiddleware
  aiodebug   aiodebug's slow-callback logging
  asyncio-debug  asyncio's debug mode: uvicorn passes debug=False to asyncio.run,
             so PYTHONASYNCIODEBUG=1 alone does nothing under it; the lifespan
             turns it on with loop.set_debug(True), as the variable would elsewhere
  phases     one server switched between configurations over HTTP, for counting
             instructions per request under callgrind (see `Phases`)
"""

from __future__ import annotations

import asyncio
import json
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
        asyncio.get_running_loop().set_debug(True)
    if MODE == "aiodebug":
        from aiodebug import log_slow_callbacks

        log_slow_callbacks.enable(THRESHOLD)
    yield


inner = FastAPI(lifespan=_lifespan)


@inner.get("/mode")
async def mode() -> dict[str, object]:
    """What this server runs: the benchmark checks it before it trusts a figure."""
    return {"mode": MODE, "asyncio_debug": asyncio.get_running_loop().get_debug()}


@inner.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


inner.include_router(stream_fixed.router)

app: Any = inner
if MODE == "full":
    app = HangdoctorMiddleware(inner, watchdog=LoopWatchdog(THRESHOLD))


class _Passthrough:
    """A pure ASGI middleware that does nothing: what being a middleware at all costs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class Phases:
    """One server that runs in one configuration at a time, switched over HTTP.

    GET /_bench/phase?NAME switches to none, passthrough (a do-nothing ASGI
    middleware), middleware (HangdoctorMiddleware) or full (HangdoctorMiddleware
    and a LoopWatchdog, started by the switch and stopped by the next one). Run
    under callgrind, the instructions of each phase count what each
    configuration costs per request, free of this machine's drift.
    """

    def __init__(self, plain: Any) -> None:
        self.plain = plain
        self.targets = {
            "none": plain,
            "passthrough": _Passthrough(plain),
            "middleware": HangdoctorMiddleware(plain),
            "full": HangdoctorMiddleware(plain),
        }
        self.current = plain
        self.dog: LoopWatchdog | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/phase":
            await self._switch(scope["query_string"].decode(), send)
            return
        await self.current(scope, receive, send)

    async def _switch(self, name: str, send: Any) -> None:
        if self.dog is not None:
            await self.dog.aclose()
            self.dog = None
        self.current = self.targets[name]
        if name == "full":
            self.dog = LoopWatchdog(THRESHOLD).start()
        payload = json.dumps({"phase": name}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


if MODE == "phases":
    app = Phases(inner)
