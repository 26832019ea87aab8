"""A FastAPI service whose requests wait on one another while /health answers.

Each route reproduces one HD6xx cause; the tests call it with short client
deadlines and then diagnose the server from outside (CPython 3.14's task view).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI()

accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()
exports = asyncio.Semaphore(2)
never = asyncio.Event()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/transfer")
async def transfer() -> dict[str, str]:
    async with accounts_lock:  # transfer takes the accounts
        await asyncio.sleep(0.2)
        async with ledger_lock:  # stuck: transfer waits for the ledger
            return {"status": "moved"}


@app.post("/close-day")
async def close_day() -> dict[str, str]:
    async with ledger_lock:  # close_day takes the ledger
        await asyncio.sleep(0.2)
        async with accounts_lock:  # stuck: close_day waits for the accounts
            return {"status": "closed"}


@app.get("/export")
async def export() -> dict[str, str]:
    async with exports:  # stuck: export waits for a token
        await never.wait()  # stuck: the upstream never answers
        return {"status": "exported"}


@app.get("/events")
async def events() -> StreamingResponse:
    async def ticks():  # type: ignore[no-untyped-def]
        while True:  # an endless stream: a graceful shutdown waits for it
            await asyncio.sleep(0.5)
            yield "data: tick\n\n"

    return StreamingResponse(ticks(), media_type="text/event-stream")


news = asyncio.Condition()


@app.get("/poll")
async def poll() -> dict[str, str]:
    """A long poll: answers when the next item is published (every 0.3 s here)."""
    async with news:
        await news.wait()
    return {"status": "news"}


@app.post("/publish")
async def publish() -> dict[str, str]:
    async with news:
        news.notify_all()
    return {"status": "published"}


@app.get("/loaded")
async def loaded() -> list[str]:
    """hangdoctor's modules in this process: a read injected from outside leaves none behind."""
    import sys

    return sorted(n for n in sys.modules if n == "hangdoctor" or n.startswith("hangdoctor."))
