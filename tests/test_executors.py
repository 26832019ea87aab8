"""hangdoctor.executors: real event loops and real threads, no mocks.

A ticker task sleeps 10 ms over and over and records how late it wakes up: a
loop blocked by a join shows up as lag. Slow upstream calls are threads waiting
on an event (up to a bound), so every test releases them at teardown and no
thread outlives its test by more than a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest

from hangdoctor.executors import LoopSafeExecutor, run_blocking, stream_until_disconnect
from hangdoctor.probe.http import timed_get
from tests.conftest import ServerFactory

T = TypeVar("T")

MAX_LAG_S = 0.1  # a loop that joins a worker lags by the worker's remaining time
PROMPT_S = 0.1  # "at once": a cancelled wait must end within this

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="unset")


class Blocker:
    """A slow upstream call: blocks its thread on an event for up to `seconds`."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()
        self.release = threading.Event()

    def __call__(self, seconds: float) -> str:
        self.started.set()
        self.release.wait(seconds)
        self.finished.set()
        return "headline"


@pytest.fixture
def blockers() -> Iterator[Callable[[], Blocker]]:
    """Make Blockers; every one is released at teardown, so its thread ends at once."""
    made: list[Blocker] = []

    def make() -> Blocker:
        made.append(Blocker())
        return made[-1]

    yield make
    for b in made:
        b.release.set()


class Ticker:
    """Measures event-loop lag: how late a 10 ms sleep wakes up."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            self.max_lag = max(self.max_lag, time.monotonic() - start - 0.01)
            self.ticks += 1


def run(coro: Awaitable[T], timeout: float = 10.0) -> T:
    """Run `coro` on a fresh event loop, bounded."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(pred: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `pred` from the loop (never blocking it) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[Ticker]:
    """A Ticker running for the duration of the block; it has ticked before the block runs."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    assert await until(lambda: ticker.ticks >= 2)
    try:
        yield ticker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def cancel_and_time(task: asyncio.Task[Any]) -> float:
    """Cancel `task`, wait (bounded) until it has ended; the seconds that took."""
    start = time.monotonic()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done, "the cancelled task did not end"
    assert task.cancelled()
    return time.monotonic() - start


# --- LoopSafeExecutor: leaving it never joins a worker on the loop -----------------------


def test_control_a_plain_executor_exit_blocks_the_loop(blockers: Callable[[], Blocker]) -> None:
    """Control: the ticker does see the HD101 join of `with ThreadPoolExecutor()`."""
    slow = blockers()

    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        async with ticking() as ticker:
            start = time.monotonic()
            with ThreadPoolExecutor(max_workers=1) as ex:  # noqa: HD101 - the bug, on purpose
                loop.run_in_executor(ex, slow, 0.4)
                assert await until(slow.started.is_set)
            took = time.monotonic() - start
            await asyncio.sleep(0.03)
        return took, ticker.max_lag

    took, lag = run(main())
    assert took >= 0.3
    assert lag >= 0.25


async def _exit_by_cancel(ex: LoopSafeExecutor, slow: Blocker) -> None:
    async def stream() -> None:
        async with ex:
            await ex.run(slow, 2.0)

    task = asyncio.create_task(stream())
    assert await until(slow.started.is_set)
    assert await cancel_and_time(task) < PROMPT_S


async def _exit_by_exception(ex: LoopSafeExecutor, slow: Blocker) -> None:
    with pytest.raises(ValueError, match="upstream broke"):
        async with ex:
            background = asyncio.create_task(ex.run(slow, 2.0))
            assert await until(slow.started.is_set)
            raise ValueError("upstream broke")
    await asyncio.gather(background, return_exceptions=True)
    assert background.cancelled()


async def _exit_normally(ex: LoopSafeExecutor, slow: Blocker) -> None:
    async with ex:
        background = asyncio.create_task(ex.run(slow, 2.0))
        assert await until(slow.started.is_set)
    await asyncio.gather(background, return_exceptions=True)
    assert background.cancelled()


async def _exit_by_aclose(ex: LoopSafeExecutor, slow: Blocker) -> None:
    async def gen() -> AsyncIterator[str]:
        async with ex:
            yield "event: hello\n\n"
            background = asyncio.create_task(ex.run(slow, 2.0))
            yield "data: started\n\n"
            await background

    agen = gen()
    assert await anext(agen) == "event: hello\n\n"
    assert await anext(agen) == "data: started\n\n"
    assert await until(slow.started.is_set)
    await agen.aclose()  # GeneratorExit at the yield, inside `async with`


@pytest.mark.parametrize(
    "leave",
    [_exit_by_cancel, _exit_by_exception, _exit_normally, _exit_by_aclose],
    ids=["cancelled", "exception", "normal", "aclose"],
)
def test_leaving_never_blocks_the_loop_while_a_worker_sleeps(
    blockers: Callable[[], Blocker],
    leave: Callable[[LoopSafeExecutor, Blocker], Awaitable[None]],
) -> None:
    """GIVEN a worker sleeping 2 s WHEN the `async with` block is left in any way
    THEN the exit is immediate, the loop keeps ticking, and the worker runs on."""
    slow = blockers()

    async def main() -> tuple[float, float, int, bool, bool]:
        ex = LoopSafeExecutor(max_workers=2)
        async with ticking() as ticker:
            start = time.monotonic()
            await leave(ex, slow)
            took = time.monotonic() - start
            await asyncio.sleep(0.3)  # the worker still sleeps; a join would show as lag
        return took, ticker.max_lag, ticker.ticks, ex.closed, slow.finished.is_set()

    took, lag, ticks, closed, finished = run(main())
    assert closed
    assert not finished, "the worker was supposed to be still asleep"
    assert lag < MAX_LAG_S, f"the loop lagged {lag:.3f} s"
    assert ticks >= 10
    assert took < 1.0  # includes the wait for the worker to start


def test_close_cancels_pending_futures(blockers: Callable[[], Blocker]) -> None:
    """close() cancels queued jobs (they never run) and ends every wait at once;
    the running job ends in the background and is then forgotten."""
    slow = blockers()
    ran: list[str] = []

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=1)
        running = asyncio.create_task(ex.run(slow, 5.0))
        assert await until(slow.started.is_set)
        queued = [asyncio.create_task(ex.run(ran.append, name)) for name in ("a", "b")]
        assert await until(lambda: ex.pending == 3)
        start = time.monotonic()
        ex.close()
        done, _ = await asyncio.wait([running, *queued], timeout=1.0)
        assert time.monotonic() - start < PROMPT_S
        assert len(done) == 3 and all(t.cancelled() for t in done)
        assert ex.pending == 1  # the running job: it cannot be interrupted
        slow.release.set()
        assert await until(lambda: ex.pending == 0)
        assert slow.finished.is_set()

    run(main())
    assert ran == []


def test_run_cancellation_returns_promptly(blockers: Callable[[], Blocker]) -> None:
    """A cancelled `run` stops waiting at once; the thread finishes later, the result is
    dropped, and the executor stays usable."""
    slow = blockers()

    async def main() -> None:
        async with LoopSafeExecutor(max_workers=1) as ex:
            task = asyncio.create_task(ex.run(slow, 5.0))
            assert await until(slow.started.is_set)
            assert await cancel_and_time(task) < PROMPT_S
            assert not slow.finished.is_set() and ex.pending == 1
            slow.release.set()
            assert await until(lambda: ex.pending == 0)
            assert await ex.run(divmod, 7, 2) == (3, 1)

    run(main())


def test_a_queued_job_whose_caller_is_cancelled_never_runs(blockers: Callable[[], Blocker]) -> None:
    """Cancelling the wait for a job still queued cancels the job itself."""
    slow = blockers()
    ran: list[str] = []

    async def main() -> None:
        async with LoopSafeExecutor(max_workers=1) as ex:
            asyncio.create_task(ex.run(slow, 5.0))  # noqa: RUF006 - ended by the exit
            assert await until(slow.started.is_set)
            queued = asyncio.create_task(ex.run(ran.append, "late"))
            assert await until(lambda: ex.pending == 2)
            assert await cancel_and_time(queued) < PROMPT_S
            assert await until(lambda: ex.pending == 1)
            slow.release.set()
            assert await until(lambda: ex.pending == 0)

    run(main())
    assert ran == []


@pytest.mark.parametrize("kind", ["default", "thread-pool", "loop-safe"])
def test_run_blocking_cancellation_returns_promptly(
    blockers: Callable[[], Blocker], kind: str
) -> None:
    """run_blocking stops waiting at once on cancellation, with every kind of executor."""
    slow = blockers()

    async def main() -> None:
        pool = ThreadPoolExecutor(max_workers=1) if kind == "thread-pool" else None
        safe = LoopSafeExecutor(max_workers=1) if kind == "loop-safe" else None
        executor = pool or safe
        try:
            task = asyncio.create_task(run_blocking(slow, 5.0, executor=executor))
            assert await until(slow.started.is_set)
            assert await cancel_and_time(task) < PROMPT_S
            assert not slow.finished.is_set()
        finally:
            # asyncio.run joins the default executor at the end: let the thread go first
            slow.release.set()
            if pool is not None:
                pool.shutdown(wait=False)
            if safe is not None:
                safe.close()
        assert await until(slow.finished.is_set)

    run(main())


def test_run_blocking_passes_arguments_and_raises() -> None:
    """Positional and keyword arguments reach the function; its exception reaches the caller."""

    async def main() -> None:
        assert await run_blocking(divmod, 7, 2) == (3, 1)
        assert await run_blocking(int, "ff", base=16) == 255
        with pytest.raises(ValueError, match="invalid literal"):
            await run_blocking(int, "not a number")
        async with LoopSafeExecutor(max_workers=1) as ex:
            assert await run_blocking(int, "ff", base=16, executor=ex) == 255
            with pytest.raises(ValueError, match="invalid literal"):
                await ex.run(int, "not a number")

    run(main())


def test_contextvars_propagate_into_the_thread() -> None:
    """The caller's contextvars are visible in the thread (as with asyncio.to_thread);
    a change made in the thread does not leak back."""

    def read_and_change() -> tuple[str, str]:
        seen = REQUEST_ID.get()
        REQUEST_ID.set("changed in the thread")
        return seen, threading.current_thread().name

    async def main() -> None:
        REQUEST_ID.set("req-42")
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            async with LoopSafeExecutor(max_workers=1, thread_name_prefix="safe") as ex:
                seen, name = await ex.run(read_and_change)
                assert (seen, name.startswith("safe")) == ("req-42", True)
                assert (await run_blocking(read_and_change, executor=ex))[0] == "req-42"
            assert (await run_blocking(read_and_change))[0] == "req-42"
            assert (await run_blocking(read_and_change, executor=pool))[0] == "req-42"
        finally:
            pool.shutdown(wait=False)
        assert REQUEST_ID.get() == "req-42"

    run(main())


def test_use_after_close_raises_a_clear_error() -> None:
    """run() and `async with` on a closed executor raise RuntimeError; close() is idempotent."""

    async def main() -> None:
        async with LoopSafeExecutor(max_workers=1) as ex:
            assert not ex.closed
        assert ex.closed and "closed" in repr(ex)
        ex.close()
        with pytest.raises(RuntimeError, match="LoopSafeExecutor is closed"):
            await ex.run(divmod, 7, 2)
        with pytest.raises(RuntimeError, match="LoopSafeExecutor is closed"):
            await run_blocking(divmod, 7, 2, executor=ex)
        with pytest.raises(RuntimeError, match="LoopSafeExecutor is closed"):
            async with ex:
                pass

    run(main())


def test_owned_by_the_application(blockers: Callable[[], Blocker]) -> None:
    """Created once at startup (no loop yet), used by several loops, closed at shutdown
    from another thread: a caller still waiting is released at once."""
    slow = blockers()
    ex = LoopSafeExecutor(max_workers=2)
    assert run(ex.run(divmod, 7, 2)) == (3, 1)
    assert run(ex.run(divmod, 9, 4)) == (2, 1)

    async def main() -> float:
        task = asyncio.create_task(ex.run(slow, 5.0))
        assert await until(slow.started.is_set)
        closer = threading.Thread(target=ex.close)
        start = time.monotonic()
        closer.start()
        done, _ = await asyncio.wait([task], timeout=2.0)
        took = time.monotonic() - start
        assert await until(lambda: not closer.is_alive())
        assert task in done and task.cancelled()
        return took

    assert run(main()) < PROMPT_S + 0.1
    assert ex.closed


# --- stream_until_disconnect ----------------------------------------------------------


class Source:
    """An SSE generator like the newsroom's: a hello, then one slow upstream call per item."""

    def __init__(self, ex: LoopSafeExecutor, slow: Blocker) -> None:
        self.ex = ex
        self.slow = slow
        self.closed = False

    async def gen(self) -> AsyncIterator[str]:
        try:
            yield "event: hello\n\n"
            while True:
                item = await self.ex.run(self.slow, 5.0)
                yield f"data: {item}\n\n"
        finally:
            self.closed = True


def test_stream_stops_on_consumer_cancel(blockers: Callable[[], Blocker]) -> None:
    """The server cancels the response task: the wait ends at once, the inner generator
    is closed, the application's executor stays open, and the loop never waits for the
    worker."""
    slow = blockers()

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=2)
        src = Source(ex, slow)
        got: list[str] = []

        async def respond() -> None:
            async for chunk in stream_until_disconnect(src.gen(), executor=ex):
                got.append(chunk)

        async with ticking() as ticker:
            task = asyncio.create_task(respond())
            assert await until(slow.started.is_set)
            assert await cancel_and_time(task) < PROMPT_S
            await asyncio.sleep(0.3)  # the worker still sleeps; a join would show as lag
        assert got == ["event: hello\n\n"]
        assert src.closed and not ex.closed
        assert await ex.run(divmod, 7, 2) == (3, 1)  # the other worker serves other streams
        assert ticker.max_lag < MAX_LAG_S
        assert not slow.finished.is_set()

    run(main())


def test_stream_stops_on_aclose(blockers: Callable[[], Blocker]) -> None:
    """aclose() of the wrapper (what a server does with a body iterator) closes the inner
    generator and leaves the application's executor open."""
    slow = blockers()

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=2)
        src = Source(ex, slow)
        stream = stream_until_disconnect(src.gen(), executor=ex)
        assert await anext(stream) == "event: hello\n\n"
        await stream.aclose()
        assert src.closed and not ex.closed
        with pytest.raises(StopAsyncIteration):
            await anext(stream)

    run(main())


def test_stream_stops_when_garbage_collected(blockers: Callable[[], Blocker]) -> None:
    """A wrapper dropped mid-stream is closed by the event loop's async-generator hook."""
    slow = blockers()

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=2)
        src = Source(ex, slow)
        stream = stream_until_disconnect(src.gen(), executor=ex)
        assert await anext(stream) == "event: hello\n\n"
        del stream
        gc.collect()
        assert await until(lambda: src.closed)
        assert not ex.closed

    run(main())


def test_stream_stops_when_the_client_is_disconnected() -> None:
    """is_disconnected() returning True ends the stream between items."""
    calls: list[float] = []

    async def is_disconnected() -> bool:
        calls.append(time.monotonic())
        return len(calls) >= 3

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=1)
        closed: list[bool] = []

        async def gen() -> AsyncIterator[str]:
            try:
                n = 0
                while True:
                    n += 1
                    yield f"data: {await ex.run(str, n)}\n\n"
            finally:
                closed.append(True)

        got = [
            chunk
            async for chunk in stream_until_disconnect(
                gen(), is_disconnected=is_disconnected, executor=ex, poll_interval=0
            )
        ]
        assert got == ["data: 1\n\n", "data: 2\n\n"]
        assert closed == [True] and not ex.closed

    run(main())


def test_disconnect_is_polled_at_most_every_poll_interval() -> None:
    """With a long poll_interval, many quick items cost one disconnect check."""
    calls: list[float] = []

    async def is_disconnected() -> bool:
        calls.append(time.monotonic())
        return False

    async def numbers() -> AsyncIterator[int]:
        for n in range(50):
            yield n

    async def main() -> list[int]:
        stream = stream_until_disconnect(numbers(), is_disconnected=is_disconnected)
        return [n async for n in stream]

    assert run(main()) == list(range(50))
    assert len(calls) == 1


def test_stream_propagates_inner_exceptions() -> None:
    """An exception of the inner generator reaches the consumer; cleanup still runs."""

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=1)

        async def gen() -> AsyncIterator[str]:
            yield "event: hello\n\n"
            await ex.run(divmod, 1, 1)
            raise ValueError("upstream broke")

        got: list[str] = []
        with pytest.raises(ValueError, match="upstream broke"):
            async for chunk in stream_until_disconnect(gen(), executor=ex):
                got.append(chunk)
        assert got == ["event: hello\n\n"] and not ex.closed

    run(main())


def test_stream_refuses_a_plain_executor() -> None:
    """A concurrent.futures executor is a TypeError that names the remedy: shutting a pool
    down per stream is the leak, and a plain pool cannot tell one stream's jobs apart."""

    async def numbers() -> AsyncIterator[int]:
        yield 1

    pool = ThreadPoolExecutor(max_workers=1)

    async def main() -> None:
        stream = stream_until_disconnect(numbers(), executor=pool)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="LoopSafeExecutor"):
            await anext(stream)

    try:
        run(main())
        assert pool.submit(divmod, 7, 2).result(timeout=5) == (3, 1)  # not shut down
    finally:
        pool.shutdown(wait=True)


def test_stream_end_cancels_only_its_own_queued_jobs(blockers: Callable[[], Blocker]) -> None:
    """Two streams share a one-worker executor: A's job runs, B's waits in the queue. When
    B's client leaves, B's job is cancelled and never runs; A's job and the pool go on."""
    slow_a, slow_b = blockers(), blockers()

    async def main() -> None:
        ex = LoopSafeExecutor(max_workers=1)

        async def gen(slow: Blocker) -> AsyncIterator[str]:
            yield "event: hello\n\n"
            yield await ex.run(slow, 5.0)

        async def respond(slow: Blocker, got: list[str]) -> None:
            async for chunk in stream_until_disconnect(gen(slow), executor=ex):
                got.append(chunk)

        got_a: list[str] = []
        task_a = asyncio.create_task(respond(slow_a, got_a))
        assert await until(slow_a.started.is_set)
        task_b = asyncio.create_task(respond(slow_b, []))
        assert await until(lambda: ex.pending == 2)
        await cancel_and_time(task_b)
        assert await until(lambda: ex.pending == 1)  # B's queued job is gone
        slow_a.release.set()
        await asyncio.wait_for(task_a, 5.0)
        assert got_a == ["event: hello\n\n", "headline"]
        assert not slow_b.started.is_set()
        ex.close()

    run(main())


def test_many_dropped_streams_stay_within_the_pool(blockers: Callable[[], Blocker]) -> None:
    """GIVEN one application executor of 2 workers WHEN 30 streams each start a slow call and
    are dropped THEN the process has at most 2 more threads, not one per dropped stream."""
    slow = blockers()

    async def main() -> int:
        ex = LoopSafeExecutor(max_workers=2)
        before = threading.active_count()

        async def gen() -> AsyncIterator[str]:
            yield "event: hello\n\n"
            yield await ex.run(slow, 5.0)

        async def respond() -> None:
            async for _chunk in stream_until_disconnect(gen(), executor=ex):
                pass

        for _ in range(30):
            task = asyncio.create_task(respond())
            await asyncio.sleep(0.01)  # the stream has sent its hello and started its call
            await cancel_and_time(task)
        grown = threading.active_count() - before
        ex.close()
        return grown

    assert run(main()) <= 2


def test_stream_rejects_a_negative_poll_interval() -> None:
    """A bad poll_interval is a ValueError; the application's executor stays usable."""

    async def numbers() -> AsyncIterator[int]:
        yield 1

    async def main() -> LoopSafeExecutor:
        ex = LoopSafeExecutor(max_workers=1)
        with pytest.raises(ValueError, match="poll_interval"):
            await anext(stream_until_disconnect(numbers(), executor=ex, poll_interval=-1))
        return ex

    ex = run(main())
    assert not ex.closed
    ex.close()


# --- end to end: the newsroom's safe_app under uvicorn ------------------------------------


def _first_event_then_abort(url: str) -> list[str]:
    """Open the SSE stream, read its first event, and drop the connection."""
    lines: list[str] = []
    with httpx.Client(timeout=5.0) as client, client.stream("GET", url) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line:
                break
            lines.append(line)
    return lines


@pytest.mark.e2e
def test_safe_app_answers_health_after_stream_aborts(newsroom: ServerFactory) -> None:
    """GIVEN safe_app with a 3 s upstream WHEN a stream is opened and dropped (3 times)
    THEN /health keeps answering within 1 s while the upstream call is still running."""
    server = newsroom(app="api.main:safe_app", env={"NEWSROOM_UPSTREAM_DELAY": "3"})
    base = server.base_url
    for _ in range(3):
        assert _first_event_then_abort(base + "/news/stream") == ["event: hello", "data: connected"]
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            health = timed_get(base + "/health", timeout=1.0)
            assert health.ok, (health, server.log_tail())
            assert health.latency_s < 1.0
            time.sleep(0.1)
