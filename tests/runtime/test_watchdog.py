"""The loop watchdog on real loops and real threads: causes, lines, durations, lifecycle."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.gil import PATTERN, backtracking_length

from hangdoctor.model import Frame, Snapshot, Thread
from hangdoctor.runtime import LoopWatchdog, StallRecord, recent_stalls
from hangdoctor.runtime import watchdog as watchdog_module

THRESHOLD = 0.1
BLOCK = 0.5
HERE = str(Path(__file__).resolve())


def _line_of(marker: str) -> int:
    """The line of this file that carries `# wd: MARKER`."""
    for n, text in enumerate(Path(HERE).read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(f"# wd: {marker}"):
            return n
    raise AssertionError(f"no line marked {marker}")


def _run(body: Callable[[], Awaitable[None]], *, uvloop: bool = False) -> list[StallRecord]:
    """Run `body` on a fresh loop under a watchdog; the stalls it reported."""

    async def main() -> list[StallRecord]:
        async with LoopWatchdog(THRESHOLD, log=False) as dog:
            await asyncio.sleep(0.05)
            await body()
            await asyncio.sleep(0.05)
        return list(dog.records)

    if uvloop:
        import uvloop as _uvloop

        return _uvloop.run(main())
    return asyncio.run(main())


def _one(records: list[StallRecord]) -> StallRecord:
    """The one stall the body caused; a shared machine may add short scheduling hiccups."""
    long = [r for r in records if r.duration >= BLOCK / 2]
    assert len(long) == 1, [r.summary() for r in records]
    return long[0]


async def _sleep_on_loop() -> None:
    time.sleep(BLOCK)  # wd: sleep


async def _cpu_on_loop() -> None:
    deadline = time.monotonic() + BLOCK
    total = 0
    while time.monotonic() < deadline:  # wd: cpu
        total += sum(range(200))


_lock = threading.Lock()


async def _lock_wait() -> None:
    held = threading.Event()

    def holder() -> None:
        with _lock:
            held.set()
            time.sleep(BLOCK)

    threading.Thread(target=holder, daemon=True).start()
    held.wait(5)
    _lock.acquire()  # wd: lock
    _lock.release()


def _slow_job() -> str:
    time.sleep(BLOCK)  # wd: worker
    return "done"


async def _executor_exit() -> None:
    with ThreadPoolExecutor(max_workers=1) as ex:  # wd: with
        ex.submit(_slow_job)


async def _future_result() -> None:
    with ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(_slow_job)
        fut.result()  # wd: result


async def _socket_recv() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_late() -> None:
        conn, _ = server.accept()
        time.sleep(BLOCK)
        conn.sendall(b"late")
        conn.close()

    threading.Thread(target=answer_late, daemon=True).start()
    with socket.create_connection(server.getsockname(), timeout=10) as sock:
        sock.recv(16)  # wd: recv
    server.close()


CASES = [
    (_sleep_on_loop, "HD201", "sleep", "blocked"),
    (_cpu_on_loop, "HD501", "cpu", "busy"),
    (_lock_wait, "HD206", "lock", "blocked"),
    (_executor_exit, "HD101", "with", "blocked"),
    (_future_result, "HD102", "result", "blocked"),
    (_socket_recv, "HD203", "recv", "blocked"),
]


@pytest.mark.parametrize(("body", "code", "marker", "state"), CASES, ids=[c[1] for c in CASES])
def test_each_cause_is_named_at_its_line(
    body: Callable[[], Awaitable[None]], code: str, marker: str, state: str
) -> None:
    for _ in range(3):
        record = _one(_run(body))
        if record.line != 0:
            break
        # a monitor preempted through the whole stall saw none of it: the record says so
        # (test_a_stall_the_monitor_never_saw_names_no_line); another run will see it
        assert (record.file, record.function) == ("?", "?"), record
    lines = {_line_of(marker)}
    if code == "HD501":  # CPU work is caught on any line of the loop that does it
        lines.add(_line_of(marker) + 1)
    assert (record.code, record.file) == (code, HERE)
    assert record.line in lines
    assert record.state == state
    assert record.function == body.__name__
    assert BLOCK * 0.8 <= record.duration < BLOCK + 2.0
    # noticed about the threshold after the missed beat (the first capture comes up to 5 ms early)
    assert THRESHOLD - 0.006 <= record.detected_after < THRESHOLD + 0.5
    assert record.samples >= 2  # captured while the stall went on, more than once
    assert record.pid == os.getpid() and record.thread == "MainThread"
    assert record.stack and record.stack[0].file  # innermost first
    assert record in recent_stalls()


def test_executor_exit_names_the_worker_it_waits_for() -> None:
    record = _one(_run(_executor_exit))
    assert record.waits_for is not None
    assert (record.waits_for.function, record.waits_for.line) == ("_slow_job", _line_of("worker"))
    assert record.waits_for.thread_name and "ThreadPoolExecutor" in record.waits_for.thread_name


def test_a_stall_that_ends_just_past_the_threshold_is_reported() -> None:
    """The monitor looks a little before the threshold, so such a stall has its stack."""

    async def main() -> list[StallRecord]:
        async with LoopWatchdog(THRESHOLD, log=False) as dog:
            for _ in range(5):
                await asyncio.sleep(0.05)
                # end 0.5 ms after the next heartbeat is `threshold` late
                time.sleep(max(0.0, dog._due + THRESHOLD + 0.0005 - time.monotonic()))  # wd: past
            await asyncio.sleep(0.05)
        return list(dog.records)

    ours = [r for r in asyncio.run(main()) if r.line == _line_of("past")]
    assert len(ours) == 5
    assert all(THRESHOLD < r.duration < THRESHOLD + 0.05 and r.code == "HD201" for r in ours)


def test_uvloop_is_watched_the_same_way() -> None:
    pytest.importorskip("uvloop")
    record = _one(_run(_sleep_on_loop, uvloop=True))
    assert (record.code, record.line) == ("HD201", _line_of("sleep"))


def test_healthy_loop_under_steady_load_reports_nothing() -> None:
    async def load() -> None:
        async def client(i: int) -> None:
            for _ in range(200):
                await asyncio.sleep(0.001 * (i % 3))
                sum(range(500))  # a little work per step, as a request handler does

        await asyncio.gather(*(client(i) for i in range(50)))

    assert _run(load) == []


class _LateMonitor(LoopWatchdog):
    """A watchdog whose monitor thread is held up through the first stall it catches, as the
    OS scheduler of a loaded machine can: its first capture happens after the stall."""

    late = True

    def _capture(self, then: Any) -> Any:
        if self.late:
            self.late = False
            time.sleep(BLOCK + 0.2)
        return super()._capture(then)


def test_a_stall_the_monitor_never_saw_names_no_line() -> None:
    """Read only once the loop waited in its selector again, the loop thread's stack is the
    idle loop's: its only user frame is the caller of asyncio.run(), which was blamed
    (HD900 or HD501 "in _run at test_watchdog.py:55" on CI). The record now says the
    stall was not seen, with its measured length and the CPU verdict."""

    async def main() -> list[StallRecord]:
        async with _LateMonitor(THRESHOLD, log=False) as dog:
            await asyncio.sleep(0.05)
            await _cpu_on_loop()
            await asyncio.sleep(0.05)
        return list(dog.records)

    record = _one(asyncio.run(main()))
    assert (record.file, record.line, record.function) == ("?", 0, "?"), record
    assert record.code == "HD501" and record.state == "busy"  # it wanted the CPU throughout
    assert "before its stack could be captured" in " ".join(record.notes)
    assert record.duration >= BLOCK / 2


def test_gil_holding_c_call_is_reported_with_its_duration_and_line() -> None:
    n, alone = backtracking_length(5 * THRESHOLD)
    pattern = re.compile(PATTERN)
    subject = "a" * n + "b"

    async def backtrack() -> None:
        pattern.match(subject)  # wd: regex

    for _ in range(3):  # the loop thread may run past the line before it lets go of the GIL
        record = _one(_run(backtrack))
        assert record.code == "HD501" and "held the GIL" in " ".join(record.notes)
        assert alone * 0.5 <= record.duration <= alone * 3 + 1.0
        if record.line == _line_of("regex"):
            break
        assert (record.file, record.line, record.function) == ("?", 0, "?"), record
    else:
        pytest.fail("the line that held the GIL was never seen in three runs")


def test_gil_held_right_after_start_is_still_reported() -> None:
    """C code holding the GIL as soon as the watchdog starts (the first line of a test) kept
    its thread from ever reading the loop's CPU before the stall: the stall was dropped."""
    n, alone = backtracking_length(5 * THRESHOLD)
    pattern = re.compile(PATTERN)
    subject = "a" * n + "b"

    async def main() -> list[StallRecord]:
        async with LoopWatchdog(THRESHOLD, log=False) as dog:
            pattern.match(subject)
            await asyncio.sleep(0.05)
        return list(dog.records)

    for _ in range(5):
        record = _one(asyncio.run(main()))
        assert record.code == "HD501" and "held the GIL" in " ".join(record.notes)
        assert alone * 0.5 <= record.duration <= alone * 3 + 1.0


def test_gil_held_until_the_watchdog_stops_is_still_reported() -> None:
    """C code holding the GIL up to the call that stops the watchdog (the last line of a test)
    ended the stall in stop(): the beat was cancelled before it ran, the monitor saw it was
    stopping before it looked, and the stall was dropped (1 run in 4 on CI)."""
    n, alone = backtracking_length(5 * THRESHOLD)
    pattern = re.compile(PATTERN)
    subject = "a" * n + "b"

    async def main() -> tuple[int, list[StallRecord]]:
        dog = LoopWatchdog(THRESHOLD, log=False).start()
        await asyncio.sleep(0.05)
        pattern.match(subject)
        await dog.aclose(timeout=5.0)
        return dog.stalls, list(dog.records)

    interval = sys.getswitchinterval()
    # the loop thread keeps the GIL past the regex, into stop(): the losing side of the race
    sys.setswitchinterval(10.0)
    try:
        runs = [asyncio.run(main()) for _ in range(4)]
    finally:
        sys.setswitchinterval(interval)
    for stalls, records in runs:
        assert stalls == 1, runs
        (record,) = records
        assert record.code == "HD501" and "held the GIL" in " ".join(record.notes)
        assert alone * 0.5 <= record.duration <= alone * 3 + 1.0


def test_stop_leaves_no_thread_and_restarts_leak_nothing() -> None:
    baseline = {t.ident for t in threading.enumerate()}

    async def cycles(n: int) -> None:
        for _ in range(n):
            dog = LoopWatchdog(THRESHOLD, log=False).start()
            await asyncio.sleep(0)
            await dog.aclose()
            assert not dog.running

    asyncio.run(cycles(20))  # warm up caches before measuring
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    asyncio.run(cycles(200))
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"{grown} bytes more after 200 start/stop cycles"
    assert {t.ident for t in threading.enumerate()} == baseline


def test_sync_stop_ends_the_thread() -> None:
    async def main() -> LoopWatchdog:
        dog = LoopWatchdog(THRESHOLD, log=False).start()
        await asyncio.sleep(0.05)
        dog.stop()
        return dog

    dog = asyncio.run(main())
    assert not dog.running
    assert not [t for t in threading.enumerate() if t.name.startswith("hangdoctor-watchdog")]


def test_start_outside_a_loop_says_how_to_use_it() -> None:
    with pytest.raises(RuntimeError, match="inside the running event loop"):
        LoopWatchdog().start()
    with pytest.raises(ValueError, match="positive"):
        LoopWatchdog(threshold=0)


def test_each_loop_in_each_thread_has_its_own_watchdog() -> None:
    results: dict[str, list[StallRecord]] = {}

    def loop_thread(name: str, body: Callable[[], Awaitable[None]]) -> None:
        async def idle() -> None:
            await asyncio.sleep(BLOCK + 0.3)

        results[name] = _run(body if name == "blocker" else idle)

    threads = [
        threading.Thread(target=loop_thread, args=("blocker", _sleep_on_loop), name="blocker"),
        threading.Thread(target=loop_thread, args=("quiet", _sleep_on_loop), name="quiet"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    record = _one(results["blocker"])
    assert results["quiet"] == []
    assert record.thread == "blocker" and record.code == "HD201"


def test_logs_one_structured_warning_and_calls_on_stall(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[StallRecord] = []

    async def main() -> None:
        async with LoopWatchdog(THRESHOLD, on_stall=seen.append):
            await asyncio.sleep(0.05)
            time.sleep(BLOCK)
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.WARNING, logger="hangdoctor"):
        asyncio.run(main())
    assert len(seen) == 1
    logged = [r for r in caplog.records if r.name == "hangdoctor"]
    assert len(logged) == 1 and "HD201" in logged[0].getMessage()
    data = logged[0].__dict__["hangdoctor_stall"]
    assert data["code"] == "HD201" and data["blocked_for_s"] == seen[0].duration
    assert StallRecord.from_dict(json.loads(seen[0].to_json())) == seen[0]


def test_a_failing_callback_does_not_stop_the_watchdog() -> None:
    def broken(record: StallRecord) -> None:
        raise ValueError("bad callback")

    async def main() -> LoopWatchdog:
        async with LoopWatchdog(THRESHOLD, on_stall=broken, log=False) as dog:
            for _ in range(2):
                await asyncio.sleep(0.05)
                time.sleep(0.3)
            await asyncio.sleep(0.05)
        return dog

    logging.getLogger("hangdoctor").disabled = True
    try:
        dog = asyncio.run(main())
    finally:
        logging.getLogger("hangdoctor").disabled = False
    assert dog.stalls == 2


def test_keeps_a_bounded_buffer() -> None:
    async def main() -> LoopWatchdog:
        async with LoopWatchdog(THRESHOLD, keep=2, log=False) as dog:
            for _ in range(3):
                await asyncio.sleep(0.05)
                time.sleep(0.25)
            await asyncio.sleep(0.05)
        return dog

    dog = asyncio.run(main())
    assert dog.stalls == 3 and len(dog.records) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_working_watchdog() -> None:
    """Fork while a watchdog runs (gunicorn --preload): the child's copy starts and reports."""
    dog = LoopWatchdog(THRESHOLD, log=False)
    running = threading.Event()
    release = threading.Event()

    async def watched_elsewhere() -> None:
        async with dog:
            running.set()
            while not release.is_set():
                await asyncio.sleep(0.01)

    parent_loop = threading.Thread(target=asyncio.run, args=(watched_elsewhere(),))
    parent_loop.start()
    try:
        assert running.wait(10) and dog.running
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: no watchdog thread came along
            code = 3
            try:
                if not dog.running:
                    records = _run_with(dog, _sleep_on_loop)
                    code = 0 if [r.code for r in records] == ["HD201"] else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert dog.running  # the parent's watchdog is untouched
    finally:
        release.set()
        parent_loop.join(10)


def _run_with(dog: LoopWatchdog, body: Callable[[], Awaitable[None]]) -> list[StallRecord]:
    async def main() -> list[StallRecord]:
        async with dog:
            await asyncio.sleep(0.05)
            await body()
            await asyncio.sleep(0.05)
        return list(dog.records)

    return asyncio.run(main())


_SELECT = Frame("EpollSelector.select", "/usr/lib/python3.11/selectors.py", 468)
_RUN_ONCE = Frame("BaseEventLoop._run_once", "/usr/lib/python3.11/asyncio/base_events.py", 1898)
_HANDLE = Frame("Handle._run", "/usr/lib/python3.11/asyncio/events.py", 80)


def _loop_sample(t: float, *frames: Frame) -> Snapshot:
    thread = Thread(tid=1, name="MainThread", frames=(*frames, _RUN_ONCE), ident=1)
    return Snapshot(pid=1, taken_at=t, threads=(thread,))


def test_a_sample_taken_as_the_stall_ended_is_not_the_stall() -> None:
    """Samples in a callback, then one with the loop back in its selector (the monitor was
    preempted): the stall is judged on the callback's samples, not called idle."""
    work = Frame("_cpu_on_loop", HERE, _line_of("cpu"))
    busy = [_loop_sample(i * 0.1, work, _HANDLE) for i in range(3)]
    idle = _loop_sample(0.3, _SELECT)
    assert watchdog_module._until_it_ran([*busy, idle], 1) == busy
    assert watchdog_module._until_it_ran([idle], 1) == [idle]  # nothing else to judge on
    assert watchdog_module._until_it_ran([idle, *busy], 1) == [idle, *busy]
