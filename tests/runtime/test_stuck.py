"""Requests and tasks stuck on a healthy loop: the watchdog's task check, on real asyncio programs.

Each program really hangs (two tasks take two locks in opposite order, a semaphore's
holders never return, a future's reader task died) while its loop keeps running; the
watchdog must report each once, with the lines, and must stay quiet for a loop that
is merely busy (a stream that yields every 50 ms, long polls woken under load).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.jsonl import whole_records

from hangdoctor.capture.redact import REDACTED
from hangdoctor.model import Finding, Frame, Holder, RequestInfo, WaitKind, WaitsOn
from hangdoctor.runtime import LoopWatchdog, StallRecord, StuckRecord, recent_stuck
from hangdoctor.runtime.watchdog import check_period

STUCK_AFTER = 0.5
HERE = Path(__file__).resolve()
SHOWN = str(HERE.relative_to(Path.cwd())) if HERE.is_relative_to(Path.cwd()) else str(HERE)
SECRET = "sk-live-0123"


def _line_of(marker: str) -> int:
    """The line of this file that carries `# st: MARKER`."""
    for n, text in enumerate(HERE.read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(f"# st: {marker}"):
            return n
    raise AssertionError(f"no line marked {marker}")


Body = Callable[[], Awaitable[list["asyncio.Task[Any]"]]]


class Run:
    """What one watched program reported, and where the listener ran."""

    def __init__(self) -> None:
        self.heard: list[StuckRecord] = []
        self.heard_on: set[str] = set()
        self.records: list[StuckRecord] = []
        self.checks = 0
        self.looks = 0
        self.loop_thread = ""

    def hear(self, record: StuckRecord) -> None:
        self.heard.append(record)
        self.heard_on.add(threading.current_thread().name)

    def codes(self) -> list[str]:
        return [r.code for r in self.records]


def _watch(
    body: Body,
    *,
    until: Callable[[list[StuckRecord]], bool] = bool,
    timeout: float = 6.0,
    linger: float = 0.0,
    stuck_after: float = STUCK_AFTER,
) -> Run:
    """Run `body` (it starts tasks) under a watchdog until `until(records)`, then `linger` more."""
    run = Run()

    async def main() -> None:
        run.loop_thread = threading.current_thread().name
        dog = LoopWatchdog(0.25, log=False, stuck_after=stuck_after, on_stuck=run.hear)
        dog.start()
        tasks: list[asyncio.Task[Any]] = []
        try:
            tasks = await body()
            deadline = time.monotonic() + timeout
            while not until(list(dog.stuck_records)) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(linger)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await dog.aclose()
        run.records = list(dog.stuck_records)
        run.checks, run.looks = dog.task_checks, dog.task_looks

    asyncio.run(main())
    return run


def _has(code: str) -> Callable[[list[StuckRecord]], bool]:
    return lambda records: any(r.code == code for r in records)


# -- an await deadlock: two locks taken in opposite order ---------------------------------


class Ledger:
    def __init__(self) -> None:
        self.accounts = asyncio.Lock()
        self.ledger = asyncio.Lock()

    async def transfer(self) -> None:
        async with self.accounts:  # st: transfer-accounts
            await asyncio.sleep(0.05)
            async with self.ledger:  # st: transfer-ledger
                pass

    async def close_day(self) -> None:
        async with self.ledger:  # st: close-ledger
            await asyncio.sleep(0.05)
            async with self.accounts:  # st: close-accounts
                pass


def test_ab_ba_deadlock_is_reported_once_with_both_tasks_and_lines() -> None:
    async def body() -> list[asyncio.Task[Any]]:
        books = Ledger()
        return [
            asyncio.create_task(books.transfer(), name="transfer"),
            asyncio.create_task(books.close_day(), name="close-day"),
        ]

    # linger over several checks and full looks: the episode goes on, it is not news again
    run = _watch(body, until=_has("HD601"), linger=3 * check_period(STUCK_AFTER) + STUCK_AFTER)
    assert run.codes() == ["HD601"], [r.summary() for r in run.records]
    record = run.records[0]
    assert record.name == "await-deadlock"
    assert set(record.cycle) == {"transfer", "close-day"}
    assert record.task in {"transfer", "close-day"}
    inner = {"transfer": "transfer-ledger", "close-day": "close-accounts"}[record.task or ""]
    assert (record.file, record.line) == (SHOWN, _line_of(inner))
    assert record.source is not None and record.source.startswith("async with self.")
    # each lock at the line where its holder took it
    taken = {(h.task, h.file, h.line) for h in record.holders}
    assert taken == {
        ("transfer", SHOWN, _line_of("transfer-accounts")),
        ("close-day", SHOWN, _line_of("close-ledger")),
    }
    assert record.waits_on is not None and record.waits_on.type == "asyncio.Lock"
    assert record.waits_on.name in {"self.accounts", "self.ledger"}
    assert all(h.waits_on is not None and h.waits_on.kind == "lock" for h in record.holders)
    assert record.stack[-1].function.endswith(("transfer", "close_day"))
    assert record.pid == os.getpid() and record.thread == run.loop_thread
    assert record.summary().startswith(f"requests stuck: HD601 await-deadlock at {SHOWN}:")
    # the listener ran off the loop, once; the process-wide buffer has the record too
    assert run.heard == [record] and run.loop_thread not in run.heard_on
    assert record in recent_stuck()


# -- a semaphore whose holders never return -------------------------------------------------


class Slots:
    def __init__(self) -> None:
        self.slots = asyncio.BoundedSemaphore(2)
        self.never = asyncio.Event()

    async def hold(self) -> None:
        async with self.slots:  # st: hold
            await self.never.wait()

    async def use(self) -> int:
        async with self.slots:  # st: use
            return 1


def test_semaphore_whose_holders_never_return_is_hd604() -> None:
    async def body() -> list[asyncio.Task[Any]]:
        pool = Slots()
        tasks = [asyncio.create_task(pool.hold(), name=f"holder-{i}") for i in range(2)]
        await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(pool.use(), name=f"user-{i}") for i in range(3)]
        return tasks

    run = _watch(body, until=_has("HD604"), linger=2 * check_period(STUCK_AFTER))
    assert run.codes() == ["HD604"], [r.summary() for r in run.records]
    record = run.records[0]
    assert (record.file, record.line) == (SHOWN, _line_of("use"))
    assert record.task is not None and record.task.startswith("user-")
    assert record.tasks_waiting == 3
    assert record.waits_on is not None
    assert (record.waits_on.type, record.waits_on.capacity, record.waits_on.in_use) == (
        "asyncio.BoundedSemaphore",
        2,
        2,
    )
    assert {(h.task, h.line) for h in record.holders} == {
        ("holder-0", _line_of("hold")),
        ("holder-1", _line_of("hold")),
    }
    assert record.waiting_s is not None and record.waiting_s >= STUCK_AFTER
    assert "3 tasks waiting" in record.summary()


# -- a future whose reader task died ----------------------------------------------------------


class Client:
    """A connection whose reader task resolves the callers' futures; the reader dies."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.reader = asyncio.create_task(self._read_loop(), name="reader")

    async def _read_loop(self) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionResetError(f"peer went away; token={SECRET}")

    async def call(self, n: int) -> bytes:
        fut = asyncio.get_running_loop().create_future()
        self.pending[n] = fut
        return await fut  # st: call


def test_future_whose_reader_died_is_hd603_and_scrubbed() -> None:
    clients: list[Client] = []

    async def body() -> list[asyncio.Task[Any]]:
        client = Client()
        clients.append(client)
        return [client.reader, asyncio.create_task(client.call(1), name="caller")]

    run = _watch(body, until=_has("HD603"), linger=2 * check_period(STUCK_AFTER))
    assert run.codes() == ["HD603"], [r.summary() for r in run.records]
    record = run.records[0]
    assert (record.file, record.line, record.task) == (SHOWN, _line_of("call"), "caller")
    assert record.waits_on is not None and record.waits_on.kind == "future"
    detail = record.waits_on.detail or ""
    assert "reader" in detail and "ConnectionResetError" in detail
    text = record.to_json()
    assert SECRET not in text and f"token={REDACTED}" in text  # the exception is scrubbed


def test_an_episode_that_ends_and_comes_back_is_reported_again() -> None:
    """The caller is answered once (the episode ends), then waits again: a second record."""
    clients: list[Client] = []
    answered = False

    async def caller(client: Client) -> None:
        for n in range(2):
            await client.call(n)

    async def body() -> list[asyncio.Task[Any]]:
        client = Client()
        clients.append(client)
        return [client.reader, asyncio.create_task(caller(client), name="caller")]

    def until(records: list[StuckRecord]) -> bool:
        nonlocal answered
        if len(records) == 1 and not answered:
            answered = True
            clients[0].pending[0].set_result(b"late")  # on the loop: `until` runs there
        return len(records) >= 2

    run = _watch(body, until=until, linger=2 * check_period(STUCK_AFTER))
    assert run.codes() == ["HD603", "HD603"], [r.summary() for r in run.records]
    assert {r.task for r in run.records} == {"caller"}
    assert run.records[0].seen_at < run.records[1].seen_at


# -- a healthy loop: nothing to report --------------------------------------------------------


async def _events(period: float, count: int) -> Any:
    for n in range(count):
        await asyncio.sleep(period)
        yield f"data: {n}\n\n"


async def _stream(period: float, count: int) -> int:
    sent = 0
    async for _event in _events(period, count):
        sent += 1
    return sent


async def _long_poll(news: asyncio.Condition, stop: asyncio.Event) -> int:
    polls = 0
    while not stop.is_set():
        async with news:
            await asyncio.wait_for(news.wait(), timeout=5)
        polls += 1
    return polls


async def _publisher(news: asyncio.Condition, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)
        async with news:
            news.notify_all()


async def _load(stop: asyncio.Event) -> None:
    while not stop.is_set():  # a few ms of CPU on the loop every 20 ms
        deadline = time.perf_counter() + 0.004
        while time.perf_counter() < deadline:
            sum(range(100))
        await asyncio.sleep(0.02)


def test_a_stream_and_long_polls_under_load_are_not_stuck() -> None:
    run_for = 6 * check_period(STUCK_AFTER) + 2 * STUCK_AFTER

    async def body() -> list[asyncio.Task[Any]]:
        news = asyncio.Condition()
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(run_for, stop.set)
        tasks = [asyncio.create_task(_stream(0.05, int(run_for / 0.05) + 40), name="stream")]
        tasks += [asyncio.create_task(_long_poll(news, stop), name=f"poll-{i}") for i in range(200)]
        tasks += [asyncio.create_task(_publisher(news, stop)), asyncio.create_task(_load(stop))]
        return tasks

    run = _watch(body, until=lambda _: False, timeout=run_for)
    assert run.records == [], [r.summary() for r in run.records]
    assert run.checks >= 6  # the cheap pass ran at every check...
    assert run.looks >= 2  # ...and every task was read and judged, at least every stuck_after


async def _deaf_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An event stream that never reads `receive`: nothing tells it its client left."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while True:
        await send({"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True})
        await asyncio.sleep(0.02)  # st: deaf-stream


def test_a_stream_that_keeps_sending_after_its_client_left_is_hd605_once() -> None:
    """GIVEN an event stream served by uvicorn that never reads `receive`, whose client
    reads one event and leaves WHEN the watchdog looks over several stuck_after spans
    THEN one HD605 record: it still sends (uvicorn drops each write), at the stream's line;
    its await moves all the time, and that does not make it a new episode at every look."""
    import uvicorn

    from hangdoctor.runtime import HangdoctorMiddleware

    async def body() -> list[asyncio.Task[Any]]:
        config = uvicorn.Config(
            HangdoctorMiddleware(_deaf_stream),
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="critical",
        )
        server = uvicorn.Server(config)

        async def serve() -> None:  # cancelled at the end: a clean shutdown closes its socket
            serving = asyncio.ensure_future(server.serve())
            try:
                await asyncio.shield(serving)
            except asyncio.CancelledError:
                server.should_exit = server.force_exit = True
                await asyncio.wait_for(serving, 10)
                raise

        serving = asyncio.create_task(serve(), name="server")
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"data: tick"), 5)
        writer.close()  # the client leaves; the stream goes on
        await writer.wait_closed()
        return [serving]

    linger = 4 * check_period(STUCK_AFTER) + 3 * STUCK_AFTER
    run = _watch(body, until=_has("HD605"), timeout=10, linger=linger)
    assert run.codes() == ["HD605"], [r.summary() for r in run.records]
    (record,) = run.records
    assert record.request is not None and record.request.disconnected
    assert record.request.path == "/events" and record.request.streaming
    assert record.request.disconnected_s is not None
    assert record.request.disconnected_s >= STUCK_AFTER
    assert "after its client left and still sends" in record.message, record.message
    assert record.file == SHOWN and record.function == "_deaf_stream"
    assert run.looks >= 3  # looked at again and again: the same episode, not news


def test_a_task_awaiting_a_shielded_running_task_is_not_a_lost_wakeup() -> None:
    """GIVEN a task that awaits `asyncio.shield(job)` while the job runs on (it sleeps)
    WHEN both wait past stuck_after THEN nothing is reported: the shield's future is set
    when the job ends, so the wait is the job's, and a sleep is no hang."""

    async def job() -> None:
        await asyncio.sleep(60)

    async def waiter(task: asyncio.Task[None]) -> None:
        await asyncio.shield(task)

    async def body() -> list[asyncio.Task[Any]]:
        inner = asyncio.create_task(job(), name="job")
        return [inner, asyncio.create_task(waiter(inner), name="waiter")]

    linger = 2 * check_period(STUCK_AFTER) + 2 * STUCK_AFTER
    run = _watch(body, until=lambda _: False, timeout=linger)
    assert run.records == [], [r.summary() for r in run.records]
    assert run.looks >= 1


def test_stuck_after_none_turns_the_check_off() -> None:
    async def body() -> list[asyncio.Task[Any]]:
        books = Ledger()
        return [asyncio.create_task(books.transfer()), asyncio.create_task(books.close_day())]

    async def main() -> LoopWatchdog:
        async with LoopWatchdog(0.25, log=False, stuck_after=None) as dog:
            tasks = await body()
            await asyncio.sleep(0.6)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return dog

    dog = asyncio.run(main())
    assert (dog.task_checks, dog.task_looks, list(dog.stuck_records)) == (0, 0, [])
    with pytest.raises(ValueError, match="stuck_after"):
        LoopWatchdog(0.25, stuck_after=0)
    assert [check_period(x) for x in (0.3, 1.0, 30.0, 600.0)] == [0.25, 0.25, 5.0, 5.0]


def test_the_logger_gets_the_record_in_extra(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        books = Ledger()
        tasks = [asyncio.create_task(books.transfer()), asyncio.create_task(books.close_day())]
        async with LoopWatchdog(0.25, stuck_after=STUCK_AFTER) as dog:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and not any(
                getattr(r, "hangdoctor_stuck", None) for r in caplog.records
            ):
                await asyncio.sleep(0.02)
            assert dog.stuck_count == 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    with caplog.at_level("WARNING", logger="hangdoctor"):
        asyncio.run(main())
    logged = [r for r in caplog.records if getattr(r, "hangdoctor_stuck", None)]
    assert len(logged) == 1
    assert logged[0].getMessage().startswith("requests stuck: HD601 await-deadlock at ")
    extra = logged[0].hangdoctor_stuck
    assert next(iter(extra)) == "record" and extra["record"] == "stuck"
    assert StuckRecord.from_dict(json.loads(json.dumps(extra))).code == "HD601"


# -- shutdown -------------------------------------------------------------------------------


def test_signals_reach_the_servers_own_handler_and_start_a_shutdown_look() -> None:
    """SIGINT: the handler the program set still runs (once), and the watchdog looks at once."""
    heard: list[int] = []

    def own_handler(signum: int, frame: object) -> None:
        heard.append(signum)

    async def main() -> tuple[str | None, int]:
        async with LoopWatchdog(0.25, log=False, stuck_after=30.0) as dog:
            assert signal.getsignal(signal.SIGINT) is not own_handler  # chained, not replaced
            looks = dog.task_looks
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(0.1)
            check = dog._tasks
            assert check is not None
            return check.shutdown_reason, dog.task_looks - looks

    before = signal.signal(signal.SIGINT, own_handler)
    try:
        reason, looks = asyncio.run(main())
        assert signal.getsignal(signal.SIGINT) is own_handler  # given back when it stopped
    finally:
        signal.signal(signal.SIGINT, before)
    assert heard == [signal.SIGINT]
    assert reason == "SIGINT" and looks >= 1


class _Drainer:
    """A lifespan that starts a worker and, at shutdown, waits for it; it never stops."""

    def __init__(self) -> None:
        self.stop: asyncio.Event | None = None

    async def work(self) -> None:
        assert self.stop is not None
        await self.stop.wait()  # st: drainer-waits

    @asynccontextmanager
    async def lifespan(self, app: object) -> Any:
        self.stop = asyncio.Event()
        worker = asyncio.create_task(self.work(), name="queue-drainer")
        yield
        await worker  # st: lifespan-waits


def test_lifespan_shutdown_that_waits_is_hd606() -> None:
    """A real uvicorn in this process; its shutdown waits for the app's worker: HD606 at once."""
    import uvicorn
    from starlette.applications import Starlette

    from hangdoctor.probe.server import free_port
    from hangdoctor.runtime import HangdoctorMiddleware

    drainer = _Drainer()
    found: list[StuckRecord] = []

    async def main() -> None:
        dog = LoopWatchdog(0.25, log=False, stuck_after=30.0, on_stuck=found.append)
        app = HangdoctorMiddleware(
            Starlette(lifespan=drainer.lifespan), watchdog=dog, stuck_after=STUCK_AFTER
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.started and dog.running and dog.stuck_after == STUCK_AFTER
        server.should_exit = True  # as its signal handler would
        while not _has("HD606")(list(dog.stuck_records)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert drainer.stop is not None
        drainer.stop.set()
        await asyncio.wait_for(serving, 10)
        found.extend(r for r in dog.stuck_records if r not in found)
        assert not dog.running  # stopped once the app's own shutdown was complete

    asyncio.run(main())
    shutdown = [r for r in found if r.code == "HD606"]
    assert len(shutdown) == 1, [r.summary() for r in found]
    record = shutdown[0]
    assert record.name == "shutdown-wait"
    assert "The shutdown began with the lifespan shutdown." in record.notes
    holders = {h.task: (h.waits_at or "") for h in record.holders}
    assert "queue-drainer" in holders
    assert holders["queue-drainer"].endswith(f":{_line_of('drainer-waits')}")
    assert "queue-drainer" in record.message


# -- the record -----------------------------------------------------------------------------


def _finding(**changes: Any) -> Finding:
    lock = WaitsOn(kind=WaitKind.LOCK, name="lock_b", type="asyncio.Lock", key="0x7f00")
    fields: dict[str, Any] = {
        "code": "HD601",
        "message": f"Task `a` waits for lock_b; api_token='{SECRET}'",
        "file": "app.py",
        "line": 12,
        "function": "transfer",
        "source": f"    async with lock_b:  # password={SECRET}",
        "task": "a",
        "task_id": 1,
        "waits_on": lock,
        "holders": (
            Holder(
                task="b",
                task_id=2,
                file="app.py",
                line=20,
                function="close_day",
                waits_on=WaitsOn(kind=WaitKind.LOCK, name="lock_a", key="0x7f01"),
                waits_at="app.py:22",
                exception=f"ValueError('token={SECRET}')",
            ),
        ),
        "waiting_s": 3.5,
        "request": RequestInfo(method="POST", path="/transfer", route="/transfer"),
        "cycle": ("a", "b"),
        "stack": (Frame(function="transfer", file="/srv/app.py", line=12),),
    }
    fields.update(changes)
    return Finding(**fields)


def test_record_from_a_finding_round_trips_and_is_scrubbed() -> None:
    record = StuckRecord.from_finding(_finding(), pid=7, thread="MainThread", tid=7, seen_at=1.5)
    data = record.to_dict()
    assert list(data)[:4] == ["record", "code", "name", "message"] and data["record"] == "stuck"
    assert data["name"] == "await-deadlock"
    text = record.to_json()
    assert SECRET not in text and REDACTED in text
    assert "0x7f00" not in text and "key" not in data["waits_on"]  # addresses stay inside
    assert data["waits_on"] == {
        "kind": "lock",
        "name": "lock_b",
        "type": "asyncio.Lock",
        "created_in": None,
        "capacity": None,
        "in_use": None,
        "waiters": None,
        "detail": None,
    }
    assert set(data["holders"][0]) == {
        "task",
        "file",
        "line",
        "function",
        "since_s",
        "waits_on",
        "waits_in",
        "alive",
        "exception",
    }
    assert StuckRecord.from_dict(json.loads(text)) == record
    assert record.summary() == (
        "requests stuck: HD601 await-deadlock at app.py:12 in transfer during POST /transfer "
        "(a -> b -> a), waiting 3.5 s"
    )


def test_stall_records_say_stall_and_old_lines_still_load() -> None:
    record = StallRecord(
        code="HD201",
        name="time-sleep-in-async",
        message="m",
        file="a.py",
        line=1,
        function="f",
        duration=1.0,
        started_at=1.0,
        detected_after=0.2,
        pid=1,
        thread="MainThread",
        tid=1,
        state="blocked",
        samples=1,
    )
    data = record.to_dict()
    assert next(iter(data)) == "record" and data["record"] == "stall"
    # a line written before the key: schema_version 1, no version, the attributes' names
    renamed = {"blocked_for_s": "duration", "detected_after_s": "detected_after"}
    old = {renamed.get(k, k): v for k, v in data.items() if k not in ("record", "schema_version")}
    old |= {"started_at": 1.0, "thread": old.pop("thread_name")}
    assert StallRecord.from_dict(old) == StallRecord.from_dict(data) == record


# -- watch's settings reach the worker -------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(2.5, "2.5"), (0.0, "None"), (None, "30.0")])
def test_watch_passes_stuck_after_to_each_watchdog(given: float | None, expected: str) -> None:
    from hangdoctor.cli.watch import watch_environment

    env = watch_environment(dict(os.environ), 0.25, None)
    if given is not None:
        env = watch_environment(dict(os.environ), 0.25, None, stuck_after=given)
    code = (
        "import asyncio\n"
        "from hangdoctor.runtime import autoinstall\n"
        "async def main():\n"
        "    await asyncio.sleep(0.05)\n"
        "    print(next(iter(autoinstall._by_thread.values())).stuck_after)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [expected]
    stuck = "off" if expected == "None" else f"{float(expected):g} s"
    assert f"stuck after {stuck})" in done.stderr


def test_watch_help_names_the_option() -> None:
    from click.testing import CliRunner

    from hangdoctor.cli.watch import command

    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--stuck-after SECONDS" in text and "0 turns it off. [default: 30.0" in text


# -- real servers ---------------------------------------------------------------------------

APPS = HERE.parent / "apps"
STUCK_APP = "tests/runtime/apps/stuck_app.py"  # as records show it: relative to the server's cwd
TOKEN = "debug-token-0123456789"


def _leave_open(port: int, path: str) -> socket.socket:
    """Send `POST path` and keep the connection open without reading: the request hangs."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode())
    return sock


def _deadlock(port: int) -> list[socket.socket]:
    return [_leave_open(port, "/transfer"), _leave_open(port, "/close-day")]


def _lines(out: Path, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> Any:
    """The JSON lines of `out` once `until(lines)` holds (or the deadline passed)."""
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = whole_records(out)
        if until(lines):
            break
        time.sleep(0.1)
    return lines


def _coded(code: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda lines: any(x["record"] == "stuck" and x["code"] == code for x in lines)


def _watch_argv(port: int, *extra: str, loop: str = "asyncio") -> list[str]:
    from tests.conftest import newsroom_argv

    server = newsroom_argv(port, app="stuck_app:app", app_dir=APPS, loop=loop)
    return [
        sys.executable,
        "-m",
        "hangdoctor",
        "watch",
        "--stuck-after",
        "1",
        *extra,
        "--",
        *server,
    ]


@pytest.mark.e2e
@pytest.mark.every_python
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_watch_reports_two_deadlocked_requests_and_the_shutdown_that_waits(
    servers: list[Any], tmp_path: Path, loop: str
) -> None:
    from tests.runtime.apps.stuck_app import line_of
    from tests.runtime.conftest import start_server

    from hangdoctor.probe.http import timed_get
    from hangdoctor.probe.server import free_port

    out = tmp_path / "records.jsonl"
    port = free_port()
    server = start_server(servers, _watch_argv(port, "--out", str(out), loop=loop), port)
    assert timed_get(f"{server.base_url}/block", timeout=10).ok  # a stall, for the same file
    sockets = _deadlock(port)
    try:
        lines = _lines(out, _coded("HD601"))
        health = timed_get(f"{server.base_url}/health", timeout=5)
        assert health.ok and health.latency_s < 1.0  # the loop is healthy all along
        stuck = [x for x in lines if x["record"] == "stuck"]
        assert [x["code"] for x in stuck] == ["HD601"], stuck  # no lifespan queue, no repeat
        record = stuck[0]
        assert record["pid"] == server.pid and record["name"] == "await-deadlock"
        assert len(record["cycle"]) == 2 and set(record["cycle"]) == {
            h["task"] for h in record["holders"]
        }
        assert {(h["file"], h["line"]) for h in record["holders"]} == {
            (STUCK_APP, line_of("transfer-accounts")),
            (STUCK_APP, line_of("close-day-ledger")),
        }
        assert (record["file"], record["line"]) in {
            (STUCK_APP, line_of("transfer-ledger")),
            (STUCK_APP, line_of("close-day-accounts")),
        }
        assert {
            record["waits_on"]["name"],
            *(h["waits_on"]["name"] for h in record["holders"]),
        } == {
            "accounts_lock",
            "ledger_lock",
        }
        stalls = [x for x in lines if x["record"] == "stall"]
        assert [(x["code"], x["line"]) for x in stalls] == [("HD201", line_of("the loop"))]

        # SIGTERM: uvicorn's own handler starts its shutdown, which waits for the two for ever
        os.kill(server.pid, signal.SIGTERM)
        lines = _lines(out, _coded("HD606"))
        shutdown = [x for x in lines if x["record"] == "stuck" and x["code"] == "HD606"]
        assert len(shutdown) == 1, lines
        notes = " ".join(shutdown[0]["notes"])
        assert "The shutdown began with SIGTERM." in notes
        assert "HD601 await-deadlock" in notes and all(t in notes for t in record["cycle"])
        assert "Shutting down" in server.log_tail(40)
        assert [x["code"] for x in lines if x["record"] == "stuck"] == ["HD601", "HD606"]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.e2e
@pytest.mark.every_python
def test_watch_without_out_names_the_stuck_requests_on_stderr(servers: list[Any]) -> None:
    from tests.runtime.apps.stuck_app import line_of
    from tests.runtime.conftest import start_server

    from hangdoctor.probe.server import free_port

    port = free_port()
    server = start_server(servers, _watch_argv(port), port)
    assert "stuck after 1 s)" in server.log_tail(20)
    sockets = _deadlock(port)
    try:
        deadline = time.monotonic() + 20
        while "requests stuck" not in server.log_tail(40) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log_tail(40)
    finally:
        for sock in sockets:
            sock.close()
    summary = next(x for x in log.splitlines() if "requests stuck" in x)
    assert f"pid {server.pid}: requests stuck: HD601 await-deadlock at {STUCK_APP}:" in summary
    assert any(
        f"{STUCK_APP}:{line_of(t)}" in summary for t in ("transfer-ledger", "close-day-accounts")
    )
    assert "fix: hangdoctor explain HD601" in log


@pytest.mark.e2e
@pytest.mark.every_python
def test_middleware_names_the_requests_of_a_deadlock(servers: list[Any]) -> None:
    """The app's own middleware and watchdog: the debug page lists the episode with its request."""
    import httpx
    from tests.conftest import newsroom_argv
    from tests.runtime.apps.stuck_app import DEBUG_PATH, line_of
    from tests.runtime.conftest import start_server

    from hangdoctor.probe.http import timed_get
    from hangdoctor.probe.server import free_port

    port = free_port()
    argv = newsroom_argv(port, app="stuck_app:watched", app_dir=APPS)
    server = start_server(servers, argv, port, STUCK_APP_DEBUG_TOKEN=TOKEN)
    sockets = _deadlock(port)
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=5) as client:
            while True:
                page = client.get(
                    server.base_url + DEBUG_PATH, headers={"authorization": f"Bearer {TOKEN}"}
                )
                assert page.status_code == 200, page.text
                stuck = page.json()["stuck"]
                if stuck or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        assert timed_get(f"{server.base_url}/health", timeout=5).ok
    finally:
        for sock in sockets:
            sock.close()
    assert [x["code"] for x in stuck] == ["HD601"], stuck
    record = stuck[0]
    assert record["record"] == "stuck"
    route = {"transfer-ledger": "/transfer", "close-day-accounts": "/close-day"}
    where = next(t for t in route if record["line"] == line_of(t))
    assert record["request"]["method"] == "POST" and record["request"]["route"] == route[where]
    assert page.json()["in_flight"] == 2
