"""judge_tasks on real asyncio programs: deadlocks, full limiters and pools, lost wake-ups.

Each scenario runs real tasks on a real loop; the in-process source (runtime.tasks)
reads them twice, a little apart, as the runtime does; judge_tasks gets what it
read. The source-only tests drop what only the process itself can know (object
identity, counters) to check that the source alone (CPython 3.14's remote view)
still names the cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from hangdoctor.analysis.diagnose import analyze
from hangdoctor.analysis.source import SourceReader
from hangdoctor.analysis.tasks import age, judge_tasks
from hangdoctor.model import Finding, Snapshot, Task, Verdict, WaitKind
from hangdoctor.report.json_report import diagnosis_from_json, diagnosis_to_json
from hangdoctor.runtime.tasks import TaskTracker

STUCK_AFTER = 0.2
Scenario = Callable[[], Awaitable[list[asyncio.Task[object]]]]
# what a scenario opened and must close once its tasks are cancelled (clients, servers):
# a finalizer that warns while the interpreter parses source trips CPython 3.11's AST
_CLOSE: list[Callable[[], Awaitable[object]]] = []


def _snapshot(tasks: tuple[Task, ...], source: str = "runtime") -> Snapshot:
    return Snapshot(pid=1, taken_at=time.time(), threads=(), tasks=tasks, tasks_source=source)


def _run(scenario: Scenario, *, settle: float = 0.1, wait: float = 0.3) -> tuple[Task, ...]:
    """Start the scenario's tasks, read them twice `wait` apart, cancel them all."""

    async def main() -> tuple[Task, ...]:
        started = await scenario()
        await asyncio.sleep(settle)
        tracker = TaskTracker()
        tracker.snapshot()
        await asyncio.sleep(wait)
        tasks = tracker.snapshot()
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
        while _CLOSE:
            await _CLOSE.pop()()
        return tasks

    return asyncio.run(main())


def _judge(
    tasks: tuple[Task, ...], stuck_after: float = STUCK_AFTER, source: str = "runtime"
) -> list[Finding]:
    judged = judge_tasks(1, [_snapshot(tasks, source)], SourceReader(), stuck_after=stuck_after)
    return list(judged.findings)


def _codes(findings: list[Finding]) -> list[str]:
    return sorted(f.code for f in findings)


# ---- scenarios: module-level objects, as services keep them ---------------------------------

lock_a = asyncio.Lock()
lock_b = asyncio.Lock()


async def _ab_ba() -> list[asyncio.Task[object]]:
    global lock_a, lock_b
    lock_a, lock_b = asyncio.Lock(), asyncio.Lock()  # fresh locks bound to this loop

    async def debit() -> None:
        async with lock_a:
            await asyncio.sleep(0.02)
            async with lock_b:  # hd: debit waits
                pass

    async def credit() -> None:
        async with lock_b:
            await asyncio.sleep(0.02)
            async with lock_a:  # hd: credit waits
                pass

    return [
        asyncio.create_task(debit(), name="debit"),
        asyncio.create_task(credit(), name="credit"),
    ]


def test_lock_order_inversion_is_a_deadlock_naming_both_tasks_and_locks() -> None:
    findings = _judge(_run(_ab_ba), stuck_after=3600)  # a cycle needs no waiting time
    (found,) = findings
    assert found.code == "HD601"
    assert set(found.cycle) == {"debit", "credit"}
    assert found.waits_on is not None and found.waits_on.kind is WaitKind.LOCK
    assert found.waits_on.type == "asyncio.Lock"
    holders = {h.task: h for h in found.holders}
    assert set(holders) == {"debit", "credit"}
    assert holders["credit"].waits_on is not None and holders["credit"].waits_on.name == "lock_a"
    assert holders["debit"].waits_on is not None and holders["debit"].waits_on.name == "lock_b"
    for holder in holders.values():  # where each took what the other wants
        assert holder.source is not None and holder.source.strip().startswith("async with lock_")
    assert "none of them can go on" in found.message
    assert found.source is not None and "hd: " in found.source


def test_the_source_alone_still_finds_the_cycle() -> None:
    """Without identities (CPython 3.14's remote view): module-level names in `async with`."""
    bare = tuple(replace(t, waits_on=None, holds=()) for t in _run(_ab_ba))
    (found,) = _judge(bare, stuck_after=3600, source="remote")
    assert found.code == "HD601" and set(found.cycle) == {"debit", "credit"}
    assert found.waits_on is not None and found.waits_on.key is not None
    assert found.waits_on.key.startswith("lock_")  # name@file, not an address


async def _relock() -> list[asyncio.Task[object]]:
    lock = asyncio.Lock()

    async def refresh() -> None:
        async with lock:
            await _helper(lock)

    return [asyncio.create_task(refresh(), name="refresh")]


async def _helper(lock: asyncio.Lock) -> None:
    async with lock:  # re-entrant acquire of a lock that is not re-entrant
        pass


def test_reacquiring_a_held_lock_is_a_deadlock_of_one_task() -> None:
    (found,) = _judge(_run(_relock), stuck_after=3600)
    assert found.code == "HD601" and found.cycle == ("refresh",)
    assert "holds itself" in found.message


async def _semaphore() -> list[asyncio.Task[object]]:
    sem = asyncio.BoundedSemaphore(2)
    never = asyncio.Event()

    async def call_upstream() -> None:
        async with sem:
            await never.wait()  # the upstream never answers

    return [asyncio.create_task(call_upstream(), name=f"call-{i}") for i in range(5)]


def test_a_semaphore_whose_holders_never_return_is_exhausted() -> None:
    findings = _judge(_run(_semaphore))
    assert _codes(findings) == ["HD604"]  # the holders' own waits are part of it
    (found,) = findings
    assert found.tasks_waiting == 3
    assert found.waits_on is not None and found.waits_on.capacity == 2
    assert found.waits_on.in_use == 2
    assert len(found.holders) == 2
    assert all(h.waits_on is not None and h.waits_on.kind is WaitKind.EVENT for h in found.holders)
    assert "3 tasks wait for asyncio.BoundedSemaphore `sem` (2 of 2 in use)" in found.message


def test_a_short_wait_is_not_stuck() -> None:
    assert _judge(_run(_semaphore), stuck_after=60) == []


async def _anyio_limiter() -> list[asyncio.Task[object]]:
    limiter = anyio.CapacityLimiter(2)
    never = anyio.Event()

    async def export() -> None:
        async with limiter:
            await never.wait()

    return [asyncio.create_task(export(), name=f"export-{i}") for i in range(4)]


def test_an_anyio_capacity_limiter_held_for_ever_is_exhausted() -> None:
    (found,) = _judge(_run(_anyio_limiter))
    assert found.code == "HD604"
    assert found.waits_on is not None and found.waits_on.type == "anyio.CapacityLimiter"
    assert (found.waits_on.capacity, found.waits_on.in_use) == (2, 2)
    assert {h.task for h in found.holders} == {"export-0", "export-1"}


async def _anyio_ab_ba() -> list[asyncio.Task[object]]:
    first, second = anyio.Lock(), anyio.Lock()

    async def one() -> None:
        async with first:
            await asyncio.sleep(0.02)
            async with second:
                pass

    async def two() -> None:
        async with second:
            await asyncio.sleep(0.02)
            async with first:
                pass

    return [asyncio.create_task(one(), name="one"), asyncio.create_task(two(), name="two")]


def test_an_anyio_lock_order_inversion_is_a_deadlock() -> None:
    """anyio records a lock's owner itself: the cycle is found from that, not the source."""
    (found,) = _judge(_run(_anyio_ab_ba), stuck_after=3600)
    assert found.code == "HD601" and set(found.cycle) == {"one", "two"}
    assert found.waits_on is not None and found.waits_on.type == "anyio.Lock"


async def _capped_thread_limiter() -> list[asyncio.Task[object]]:
    """Sync work in threads (as Starlette runs sync routes), the shared limiter capped at 2."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    tokens = limiter.total_tokens
    limiter.total_tokens = 2

    async def restore() -> None:
        limiter.total_tokens = tokens

    _CLOSE.append(restore)

    async def report() -> None:
        await anyio.to_thread.run_sync(time.sleep, 1.0)

    return [asyncio.create_task(report(), name=f"report-{i}") for i in range(3)]


def test_a_capped_thread_limiter_held_by_slow_sync_work_is_exhausted() -> None:
    findings = _judge(_run(_capped_thread_limiter))
    assert _codes(findings) == ["HD604"], [f.message for f in findings]
    (found,) = findings
    assert found.waits_on is not None and found.waits_on.type == "AnyIO's thread limiter"
    assert (found.waits_on.capacity, found.waits_on.in_use) == (2, 2)
    assert len(found.holders) == 2
    assert all(h.waits_on is not None and h.waits_on.kind is WaitKind.THREAD for h in found.holders)


class _Upstream:
    """Requests share one connection; a reader task resolves their futures (and dies)."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.reader = asyncio.create_task(self._read(), name="upstream-reader")

    async def _read(self) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("upstream closed the connection")

    async def call(self, rid: int) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        return await fut


async def _dead_reader() -> list[asyncio.Task[object]]:
    upstream = _Upstream()
    calls = [asyncio.create_task(upstream.call(i), name=f"call-{i}") for i in range(2)]
    return [upstream.reader, *calls]  # type: ignore[list-item]


def test_a_future_whose_reader_died_is_a_lost_wakeup_naming_the_exception() -> None:
    findings = _judge(_run(_dead_reader))
    assert _codes(findings) == ["HD603", "HD603"]
    for found in findings:
        assert found.waits_on is not None and found.waits_on.kind is WaitKind.FUTURE
        assert found.waits_on.name == "fut"
        assert "ConnectionResetError('upstream closed the connection')" in found.message
        assert found.function.endswith("call")  # qualified from Python 3.11


async def _progressing() -> list[asyncio.Task[object]]:
    """A stream that yields every 20 ms and a long poll woken every 30 ms: both progress."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    ready = asyncio.Event()

    async def events():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            await asyncio.sleep(0.02)
            n += 1
            yield n

    async def stream() -> None:
        async for _ in events():
            pass

    async def producer() -> None:
        for n in range(10_000):
            await asyncio.sleep(0.01)
            await queue.put(n)

    async def consumer() -> None:
        while True:
            await queue.get()

    async def long_poll() -> None:
        while True:
            ready.clear()
            await ready.wait()

    async def waker() -> None:
        while True:
            await asyncio.sleep(0.03)
            ready.set()

    return [
        asyncio.create_task(c(), name=c.__name__)
        for c in (stream, producer, consumer, long_poll, waker)
    ]


def test_streams_and_long_polls_that_keep_moving_are_not_stuck() -> None:
    tasks = _run(_progressing, wait=0.5)
    assert {t.name for t in tasks} >= {"stream", "consumer", "long_poll"}
    assert _judge(tasks, stuck_after=0.1) == []


async def _drained_pool(url: str) -> list[asyncio.Task[object]]:
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=2))
    opened: list[httpx.Response] = []

    async def close() -> None:
        for response in opened:
            await response.aclose()
        await client.aclose()

    _CLOSE.append(close)

    async def leak() -> None:
        request = client.build_request("GET", url)
        response = await client.send(request, stream=True)  # never closed: holds a connection
        opened.append(response)

    async def fetch() -> None:
        await client.get(url)  # waits for a connection from the pool

    leakers = [asyncio.create_task(leak(), name=f"leak-{i}") for i in range(2)]
    await asyncio.sleep(0.2)
    return [*leakers, *(asyncio.create_task(fetch(), name=f"fetch-{i}") for i in range(3))]


def test_an_httpx_pool_drained_by_unclosed_streamed_responses_is_exhausted() -> None:
    async def scenario() -> list[asyncio.Task[object]]:
        server = await asyncio.start_server(_slow_http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        _CLOSE.append(stop)
        return await _drained_pool(f"http://127.0.0.1:{port}/")

    findings = _judge(_run(scenario))
    pool = [f for f in findings if f.code == "HD602"]
    assert len(pool) == 1, [f.message for f in findings]
    (found,) = pool
    assert found.waits_on is not None and found.waits_on.type == "httpcore.AsyncConnectionPool"
    assert found.waits_on.capacity == 2 and found.waits_on.in_use == 2
    assert found.tasks_waiting == 3
    assert "wait for a connection from httpcore.AsyncConnectionPool" in found.message


async def _slow_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers headers and one chunk, then keeps the body open (an endless stream)."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # until the client closes the response
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _sessions_held_by_streams(path: str) -> list[asyncio.Task[object]]:
    """Event streams that keep their database session open while they wait for news."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", pool_size=2, max_overflow=0, pool_timeout=60
    )
    _CLOSE.append(engine.dispose)
    sessions = async_sessionmaker(engine)
    news = asyncio.Event()

    async def stream() -> None:
        async with sessions() as session:
            await session.execute(text("select 1"))
            await news.wait()  # the session (and its connection) stays checked out

    async def query() -> None:
        async with sessions() as session:
            await session.execute(text("select 1"))  # waits for a connection

    streams = [asyncio.create_task(stream(), name=f"stream-{i}") for i in range(2)]
    await asyncio.sleep(0.2)
    return [*streams, *(asyncio.create_task(query(), name=f"query-{i}") for i in range(2))]


def test_an_sqlalchemy_pool_held_by_open_streams_is_exhausted(tmp_path: Path) -> None:
    db = str(tmp_path / "news.sqlite")
    findings = _judge(_run(lambda: _sessions_held_by_streams(db)))
    assert _codes(findings) == ["HD602"], [f.message for f in findings]
    (found,) = findings
    assert found.waits_on is not None and found.waits_on.type == "SQLAlchemy pool"
    assert (found.waits_on.capacity, found.waits_on.in_use) == (2, 2)
    assert found.tasks_waiting == 2
    assert {h.task for h in found.holders} == {"stream-0", "stream-1"}
    assert "(2 of 2 in use)" in found.message


async def _body_read_twice() -> list[asyncio.Task[object]]:
    """A middleware reads the request body from `receive` and does not hand it on.

    (FastAPI resolves `request: Request` from the module's globals: imported at the top.)
    """
    api = FastAPI()

    @api.post("/orders")
    async def orders(request: Request) -> dict[str, object]:
        return {"order": await request.json()}  # the body is gone: waits for ever

    async def audit(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            more = True
            while more:  # reads the whole body to log it, and does not replay it
                more = (await receive()).get("more_body", False)
        await api(scope, receive, send)

    config = uvicorn.Config(audit, host="127.0.0.1", port=0, lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(), name="server")
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)

    _CLOSE.append(stop)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            await http.post(f"http://127.0.0.1:{port}/orders", json={"sku": 1})

    return [asyncio.create_task(client(), name="client")]


def test_a_body_already_read_by_a_middleware_is_a_lost_wakeup() -> None:
    tasks = _run(_body_read_twice)
    findings = [f for f in _judge(tasks) if f.code == "HD603"]
    assert len(findings) == 1, [f.message for f in _judge(tasks)]
    (found,) = findings
    assert found.waits_on is not None and found.waits_on.kind is WaitKind.RECEIVE
    assert found.waits_on.type == "the request body"
    assert "read once already (by a middleware?)" in found.message
    assert found.source is not None and "await request.json()" in found.source


async def _stream_after_disconnect() -> list[asyncio.Task[object]]:
    """A raw ASGI event stream that never reads `receive`: its client leaves, it goes on."""
    from hangdoctor.runtime import HangdoctorMiddleware

    feed = asyncio.Event()  # the next event: never comes

    async def events(scope, receive, send):  # type: ignore[no-untyped-def]
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: hello\n\n", "more_body": True})
        async with _STREAM_LOCK:  # the stream holds this while it waits for news
            await feed.wait()

    app = HangdoctorMiddleware(events)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(), name="server")
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(serving, 10)

    _CLOSE.append(stop)
    url = f"http://127.0.0.1:{port}/events"
    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url) as response:
        async for _ in response.aiter_bytes():
            break  # the first event, then the client leaves
    return []


_STREAM_LOCK = asyncio.Lock()


def test_a_stream_still_waiting_after_its_client_left_is_hd605() -> None:
    global _STREAM_LOCK
    _STREAM_LOCK = asyncio.Lock()
    findings = _judge(_run(_stream_after_disconnect))
    assert _codes(findings) == ["HD605"], [f.message for f in findings]
    (found,) = findings
    assert found.request is not None and found.request.disconnected
    assert found.request.method == "GET" and found.request.path == "/events"
    assert "after its client left" in found.message
    assert "still holding _STREAM_LOCK" in found.message


def test_a_stuck_diagnosis_renders_and_round_trips_through_json() -> None:
    """The loop answers (idle) and the tasks are stuck: verdict stuck, exit 1 material."""
    tasks = _run(_ab_ba)
    snap = Snapshot(
        pid=1,
        taken_at=time.time(),
        threads=(),
        tasks=tasks,
        tasks_source="runtime",
    )
    judged = judge_tasks(1, [snap], SourceReader(), stuck_after=STUCK_AFTER)
    assert judged.findings
    # analyze() needs a loop thread: without one it reports no loop, whatever the tasks
    assert analyze([snap]).verdict is Verdict.HEALTHY
    text = diagnosis_to_json(
        replace(analyze([snap]), verdict=Verdict.STUCK, findings=judged.findings)
    )
    back = diagnosis_from_json(text)
    assert back.findings == judged.findings


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.42, "0.4 s"), (41.0, "41 s"), (300.0, "5 min"), (7200.0, "2 h"), (None, "?")],
)
def test_ages_read_like_a_goroutine_dump(seconds: float | None, shown: str) -> None:
    assert age(seconds) == shown


# ---- many tasks: the few that matter among the idle ones -------------------------------------


async def _ab_ba_among_idle() -> list[asyncio.Task[object]]:
    """The lock-order deadlock among hundreds of idle requests, some inside a semaphore."""
    slots = asyncio.BoundedSemaphore(1000)
    news = asyncio.Event()

    async def idle(n: int) -> None:
        if n % 3 == 0:
            async with slots:
                await news.wait()
        else:
            await news.wait()

    idle_tasks = [asyncio.create_task(idle(n), name=f"idle-{n}") for n in range(300)]
    return [*idle_tasks, *await _ab_ba()]


def test_a_deadlock_among_many_idle_tasks_is_the_one_finding() -> None:
    (found,) = _judge(_run(_ab_ba_among_idle), stuck_after=3600)
    assert found.code == "HD601" and set(found.cycle) == {"debit", "credit"}


async def _awaits_its_own_waiter() -> list[asyncio.Task[object]]:
    """A task awaits a task it started, which waits for the lock the first one holds."""
    lock = asyncio.Lock()

    async def child() -> None:
        async with lock:
            pass

    async def parent() -> None:
        async with lock:
            await asyncio.create_task(child(), name="child")

    return [asyncio.create_task(parent(), name="parent")]


def test_awaiting_the_task_that_waits_for_a_held_lock_is_a_deadlock() -> None:
    (found,) = _judge(_run(_awaits_its_own_waiter), stuck_after=3600)
    assert found.code == "HD601" and set(found.cycle) == {"parent", "child"}


async def _conditions() -> list[asyncio.Task[object]]:
    cond = asyncio.Condition()
    never = asyncio.Event()

    async def waits_on_it() -> None:
        async with cond:
            await cond.wait()  # releases the condition's lock while it waits

    async def waits_inside() -> None:
        async with cond:
            await never.wait()

    return [
        asyncio.create_task(waits_on_it(), name="released"),
        asyncio.create_task(waits_inside(), name="inside"),
    ]


def test_a_condition_waited_on_is_not_held_one_waited_inside_is() -> None:
    tasks = _run(_conditions)
    judged = judge_tasks(1, [_snapshot(tasks)], SourceReader(), stuck_after=3600)
    by_name = {t.name: t for t in judged.tasks}
    released, inside = by_name["released"], by_name["inside"]
    assert released.waits_on is not None and released.waits_on.kind is WaitKind.CONDITION
    assert released.holds == ()
    assert [h.name for h in inside.holds] == ["cond"]


def test_a_wait_of_exactly_stuck_after_is_stuck() -> None:
    tasks = _run(_dead_reader)
    calls = [t for t in tasks if t.name.startswith("call-")]
    assert len(calls) == 2
    assert _codes(_judge(tuple(replace(t, waiting_s=0.25) for t in calls), 0.25)) == [
        "HD603",
        "HD603",
    ]
    assert _judge(tuple(replace(t, waiting_s=0.249) for t in calls), 0.25) == []
