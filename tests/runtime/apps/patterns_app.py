"""A FastAPI service with one route per way requests hang while its loop stays healthy.

Each pattern is a pair (or trio) of routes: the ones that take the resource and keep it,
and the one that then waits for it for ever. `/health` answers all along.

- anyio locks in opposite orders: `POST /anyio/transfer` + `POST /anyio/close-day` (HD601);
- an httpx pool of 2 drained by streamed responses nobody closed: `GET /leak` twice, then
  `GET /fetch` (HD602);
- a SQLAlchemy pool of 2 whose sessions are held by open event streams: `GET /db/events`
  twice, then `GET /db/query` (HD602);
- a future only a reader task resolves, and that task died: `GET /ask` (HD603, with the
  reader's exception);
- a request body a middleware read and did not hand on: `POST /orders` (HD603);
- a thread limiter of 2 whose threads do not return: `GET /render` three times (HD604).

`app` is the bare app (for `hangdoctor watch`); `watched` adds `HangdoctorMiddleware` and
its own `LoopWatchdog` (stuck after `STUCK_AFTER_S`, debug page at `DEBUG_PATH` with the
token in `PATTERNS_DEBUG_TOKEN`). `line_of(tag)` is the line carrying `# pt: tag`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog

STUCK_AFTER_S = 1.0
DEBUG_PATH = "/_hangdoctor/stalls"
THREAD_WORK_S = 20.0  # the stuck sync work: bounded, so the server can still exit

api = FastAPI()
accounts = anyio.Lock()
ledger = anyio.Lock()
renders = anyio.CapacityLimiter(2)
_state: dict[str, Any] = {}
_leaked: list[Any] = []


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@api.post("/anyio/transfer")
async def anyio_transfer() -> dict[str, str]:
    async with accounts:  # pt: anyio-transfer-accounts
        await anyio.sleep(0.2)
        async with ledger:  # pt: anyio-transfer-ledger
            return {"done": "transfer"}


@api.post("/anyio/close-day")
async def anyio_close_day() -> dict[str, str]:
    async with ledger:  # pt: anyio-close-ledger
        await anyio.sleep(0.2)
        async with accounts:  # pt: anyio-close-accounts
            return {"done": "close-day"}


def _client(request: Request) -> httpx.AsyncClient:
    if "client" not in _state:
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        _state["client"] = httpx.AsyncClient(
            base_url=str(request.base_url), limits=limits, timeout=httpx.Timeout(5, pool=None)
        )  # no pool timeout: a request waits for a connection for ever
    client: httpx.AsyncClient = _state["client"]
    return client


@api.get("/upstream")
async def upstream() -> StreamingResponse:
    async def ticks():  # type: ignore[no-untyped-def]
        while True:
            yield "data: tick\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(ticks(), media_type="text/event-stream")


@api.get("/leak")
async def leak(request: Request) -> dict[str, str]:
    client = _client(request)
    response = await client.send(client.build_request("GET", "/upstream"), stream=True)
    _leaked.append(response)  # pt: leak — never closed: it keeps its pool connection
    return {"status": str(response.status_code)}


@api.get("/fetch")
async def fetch(request: Request) -> dict[str, str]:
    response = await _client(request).get("/health")  # pt: fetch
    return {"status": str(response.status_code)}


def _sessions() -> Any:
    if "sessions" not in _state:
        path = os.path.join(tempfile.gettempdir(), f"hd-patterns-{os.getpid()}.sqlite")
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{path}", pool_size=2, max_overflow=0, pool_timeout=120
        )
        _state["sessions"] = async_sessionmaker(engine)
    return _state["sessions"]


@api.get("/db/events")
async def db_events() -> StreamingResponse:
    async def events():  # type: ignore[no-untyped-def]
        async with _sessions()() as session:  # pt: db-events
            await session.execute(text("select 1"))
            yield "data: subscribed\n\n"
            await asyncio.Event().wait()  # no news ever: the session stays checked out

    return StreamingResponse(events(), media_type="text/event-stream")


@api.get("/db/query")
async def db_query() -> dict[str, int]:
    async with _sessions()() as session:
        row = await session.execute(text("select 1"))  # pt: db-query
        return {"one": int(row.scalar_one())}


class Upstream:
    """A connection whose reader task resolves each pending answer; the reader can die."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[str] | None = None
        self.reader = asyncio.create_task(self._read(), name="upstream-reader")

    async def _read(self) -> None:
        await asyncio.sleep(0.05)
        raise ConnectionResetError("upstream closed the connection")

    async def ask(self) -> str:
        self.pending = asyncio.get_running_loop().create_future()
        return await self.pending  # pt: ask


@api.get("/ask")
async def ask() -> dict[str, str]:
    if "upstream" not in _state:
        _state["upstream"] = Upstream()
        await asyncio.sleep(0.2)  # the reader has died by now
    return {"answer": await _state["upstream"].ask()}


@api.post("/orders")
async def orders(request: Request) -> dict[str, Any]:
    return {"order": await request.json()}  # pt: orders


@api.get("/render")
async def render() -> dict[str, str]:
    await to_thread.run_sync(time.sleep, THREAD_WORK_S, limiter=renders)  # pt: render
    return {"rendered": "yes"}


async def app(scope: Any, receive: Any, send: Any) -> None:
    """An auditing middleware that reads POST /orders' body to log it, and does not replay it."""
    if scope["type"] == "http" and scope["path"] == "/orders":
        more = True
        while more:
            more = (await receive()).get("more_body", False)
    await api(scope, receive, send)


watched = HangdoctorMiddleware(
    app,
    watchdog=LoopWatchdog(0.25),
    stuck_after=STUCK_AFTER_S,
    debug_path=DEBUG_PATH,
    debug_token=os.environ.get("PATTERNS_DEBUG_TOKEN", "unset-token-never-used"),
)


def line_of(tag: str) -> int:
    """The line of this file that carries `# pt: <tag>`."""
    for number, line in enumerate(Path(__file__).read_text().splitlines(), start=1):
        if f"# pt: {tag}" in line:
            return number
    raise LookupError(tag)
