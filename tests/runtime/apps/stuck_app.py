"""A FastAPI app whose requests deadlock on two asyncio locks while its loop stays healthy.

- `POST /transfer` takes `accounts_lock`, pauses, then takes `ledger_lock`;
- `POST /close-day` takes them in the opposite order. Sent together, each takes
  its first lock and waits for the other's for ever: HD601. The loop is free:
- `GET /health` answers all along;
- `GET /block` blocks the loop for `BLOCK_S` (a stall, HD201, beside the stuck records).

`app` is the bare app (for `hangdoctor watch`); `watched` is the same routes with
`HangdoctorMiddleware` and its own `LoopWatchdog` (stuck after `STUCK_AFTER_S`,
debug page at `/_hangdoctor/stalls` with the token in `STUCK_APP_DEBUG_TOKEN`).
`line_of(tag)` is the line of the `# takes: tag` comment, for the tests.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from fastapi import FastAPI

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog

PAUSE_S = 0.2
BLOCK_S = 0.6
STUCK_AFTER_S = 1.0
DEBUG_PATH = "/_hangdoctor/stalls"

accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()


def _routes(app: FastAPI) -> FastAPI:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/block")
    async def block() -> dict[str, str]:
        time.sleep(BLOCK_S)  # takes: the loop
        return {"blocked": "the loop"}

    @app.post("/transfer")
    async def transfer() -> dict[str, str]:
        async with accounts_lock:  # takes: transfer-accounts
            await asyncio.sleep(PAUSE_S)
            async with ledger_lock:  # takes: transfer-ledger
                return {"done": "transfer"}

    @app.post("/close-day")
    async def close_day() -> dict[str, str]:
        async with ledger_lock:  # takes: close-day-ledger
            await asyncio.sleep(PAUSE_S)
            async with accounts_lock:  # takes: close-day-accounts
                return {"done": "close-day"}

    return app


def line_of(tag: str) -> int:
    """The line of this file that carries `# takes: <tag>`."""
    for number, text in enumerate(Path(__file__).read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# takes: {tag}"):
            return number
    raise LookupError(tag)


app = _routes(FastAPI())

watched = _routes(FastAPI())
watched.add_middleware(
    HangdoctorMiddleware,
    watchdog=LoopWatchdog(0.25),
    stuck_after=STUCK_AFTER_S,
    debug_path=DEBUG_PATH,
    debug_token=os.environ.get("STUCK_APP_DEBUG_TOKEN", "unset-token-never-used"),
)
