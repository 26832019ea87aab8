"""Executor and streaming helpers that never block the event loop.

The canonical hang (HD101) is `with ThreadPoolExecutor() as ex:` inside an SSE
generator: when the client leaves, the generator is cancelled and
`Executor.__exit__` runs `shutdown(wait=True)` on the event-loop thread, which
joins a worker still inside a slow call, so every request waits for it.
Shutting a per-stream pool down with `wait=False` instead trades the hang for a
leak: each dropped stream leaves its worker thread running for as long as the
slow call lasts (80 dropped streams took a service from 2 to 82 threads). The
design here is bounded: one pool per application, sized, created at startup
and shut down without waiting at the end; a stream only cancels its own jobs.

- `LoopSafeExecutor` is that application pool: a `ThreadPoolExecutor` of
  `max_workers` threads whose `close()` (or leaving `async with`, in the app's
  lifespan) cancels the pending work and calls
  `shutdown(wait=False, cancel_futures=True)`. A cancelled wait cancels its
  job: a queued job never starts, a running one keeps its pool thread (never
  a new one) until it returns.
- `run_blocking` runs a function in a thread (the application's
  `LoopSafeExecutor`, any executor, or the loop's default one) and, when the
  awaiting task is cancelled, stops waiting at once instead of joining anything.
- `stream_until_disconnect` wraps a streaming generator: it stops when the
  client leaves (cancellation, `aclose()`, or an `is_disconnected` check), then
  cancels the jobs this stream started in the application's executor (the pool
  stays open for the other streams) and closes the inner generator, without
  blocking.

Threads stay bounded by `max_workers` whatever the number of streams; what a
pool cannot do is stop a call that is already running, so give slow upstream
calls a timeout: it bounds how long a thread stays busy after its client left.

Standard library only, and nothing from hangdoctor that needs a third-party
package: this module is imported inside production services.

Python versions: `shutdown(cancel_futures=True)` exists since Python 3.9; before
it, `shutdown()` could not drop work still queued in the pool (only each
future's own `cancel()` could). hangdoctor requires Python 3.10, so both are
always available here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

__all__ = ["LoopSafeExecutor", "run_blocking", "stream_until_disconnect"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class LoopSafeExecutor:
    """The application's thread pool for blocking calls; its shutdown never waits on the loop.

    Create one per application, at startup, sized for the blocking calls the
    whole service may have running at once, and close it when the application
    ends: `async with LoopSafeExecutor(max_workers=8) as ex:` around the
    `yield` of a lifespan, or `close()` in a shutdown hook. Not one per stream:
    a pool per stream adds threads with every stream, and a stream that is
    dropped while its call runs leaves that thread behind until the call
    returns. `await ex.run(fn, *args, **kwargs)` runs `fn` in the pool with a
    copy of the caller's contextvars, like `asyncio.to_thread`.

    When the awaiting task is cancelled (a client disconnect), `run` stops
    waiting at once: a job that already runs keeps its pool thread until it
    returns and its result is dropped; a job still queued never starts.
    `cancel_jobs(task)` cancels what one task (one stream) started. Leaving the
    `async with` block for any reason (normal end, an exception,
    `CancelledError`, `GeneratorExit` from an async generator's `aclose()`) calls
    `close()`, which cancels every pending job and calls
    `shutdown(wait=False, cancel_futures=True)`: it never joins a worker, so it
    cannot freeze the loop the way `with ThreadPoolExecutor()` does (HD101).

    A job still running after `close()` ends in the background. The interpreter
    still joins pool threads when the process exits (a `concurrent.futures`
    rule), so a stuck call may delay process exit, never a request.
    """

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "") -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=thread_name_prefix
        )
        self._max_workers = max_workers
        # a job -> the asyncio future its caller awaits and the task that started it;
        # guarded by _lock because jobs finish (and forget themselves) on worker threads
        self._pending: dict[Future[Any], tuple[asyncio.Future[Any], asyncio.Task[Any] | None]] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close()` ran (directly or by leaving `async with`)."""
        return self._closed

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished yet: queued, or running in a worker.

        A job whose caller stopped waiting still counts until its thread returns;
        that is the work a blocking shutdown would have waited for.
        """
        with self._lock:
            return len(self._pending)

    async def run(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run `fn(*args, **kwargs)` in the pool and return its result.

        The caller's contextvars are copied into the thread. If the awaiting task
        is cancelled, the wait ends at once with `CancelledError`; the thread is
        left to finish and its result is dropped. If the executor is closed while
        the caller waits, the wait ends with `CancelledError` too. Raises
        `RuntimeError` when the executor is already closed.
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        # closing and submitting never interleave, so no job escapes close(); the lock
        # guards dict updates only, never a wait (ThreadPoolExecutor.submit locks alike)
        with self._lock:  # noqa: HD206
            if self._closed:
                raise RuntimeError(self._closed_message())
            job: Future[_T] = self._pool.submit(call)
            # cancelling `waiter` (the caller was cancelled) cancels `job` if still queued
            waiter = asyncio.wrap_future(job, loop=loop)
            self._pending[job] = (waiter, asyncio.current_task())
        job.add_done_callback(self._forget)  # outside the lock: may run right here
        return await waiter

    def close(self) -> None:
        """Cancel pending jobs and shut the pool down without waiting; idempotent.

        Synchronous and non-blocking, so it is safe on the event-loop thread, in
        a `finally`, in an application's shutdown hook, or from another thread.
        Callers still awaiting `run` get `CancelledError`; a job that already
        runs cannot be interrupted and ends in the background. `cancel_futures`
        (Python 3.9+, always there on the 3.10+ hangdoctor needs) also drops jobs
        queued in the pool by other means; before 3.9 queued work could only be
        dropped by cancelling each future, as this method also does.
        """
        with self._lock:  # noqa: HD206 - held for a dict copy, never across a wait
            if self._closed:
                return
            self._closed = True
            pending = [(job, waiter) for job, (waiter, _) in self._pending.items()]
        for job, waiter in pending:
            job.cancel()  # a queued job never starts; a running one is unaffected
            _cancel_threadsafe(waiter)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def cancel_jobs(self, owner: asyncio.Task[Any] | None = None) -> int:
        """Cancel the pending jobs `owner` started (by default the current task); how many.

        What a stream does when its client leaves: its queued jobs never start
        and its waits end with `CancelledError`, while the pool stays open for
        every other stream. A job that already runs cannot be interrupted; it
        keeps its pool thread until it returns. Non-blocking, like `close()`.
        """
        if owner is None:
            owner = asyncio.current_task()
        with self._lock:  # noqa: HD206 - held for a dict copy, never across a wait
            mine = [(job, w) for job, (w, task) in self._pending.items() if task is owner]
        for job, waiter in mine:
            job.cancel()
            _cancel_threadsafe(waiter)
        return len(mine)

    async def __aenter__(self) -> LoopSafeExecutor:
        if self._closed:
            raise RuntimeError(self._closed_message())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        workers = self._max_workers
        return f"<LoopSafeExecutor {state} max_workers={workers} pending={self.pending}>"

    def _forget(self, job: Future[Any]) -> None:
        with self._lock:
            self._pending.pop(job, None)

    def _closed_message(self) -> str:
        return (
            "This LoopSafeExecutor is closed and cannot run new jobs. Keep one per "
            "application: create it at startup and close it only when the application "
            "shuts down."
        )


def _cancel_threadsafe(waiter: asyncio.Future[Any]) -> None:
    """Cancel an asyncio future from any thread: asyncio futures are not thread-safe."""
    loop = waiter.get_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        waiter.cancel()
        return
    # the loop is closed: nobody can be waiting on the future any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(waiter.cancel)


async def run_blocking(
    fn: Callable[..., _T],
    /,
    *args: Any,
    executor: Executor | LoopSafeExecutor | None = None,
    **kwargs: Any,
) -> _T:
    """Run `fn(*args, **kwargs)` in a thread without ever joining it on the loop.

    `executor` is the application's `LoopSafeExecutor` (its `run`), any
    `concurrent.futures` executor that outlives the call, or None for the
    loop's default executor (one bounded pool per loop, `min(32, CPUs + 4)`
    threads). Either way the threads are bounded by the pool, not by the number
    of calls; never pass a pool created for this one call. When the awaiting task
    is cancelled the wait ends at once with `CancelledError`: a queued call never
    starts, a running one finishes in the background and its result is dropped.

    The caller's contextvars are copied into the thread (as `asyncio.to_thread`
    does) for thread executors; a process pool gets the bare call, because a
    context cannot cross a process boundary. `executor` is taken by this
    function: to pass an `executor=` keyword to `fn` itself, bind it with
    `functools.partial`.

    The default executor is joined by `asyncio.run()` when the program ends, so
    a stuck call there delays exit (not requests); a `LoopSafeExecutor` lets
    the caller drop the work instead.
    """
    if isinstance(executor, LoopSafeExecutor):
        return await executor.run(fn, *args, **kwargs)
    loop = asyncio.get_running_loop()
    if executor is None or isinstance(executor, ThreadPoolExecutor):
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    else:
        call = functools.partial(fn, *args, **kwargs)
    # run_in_executor's future is chained to the job: cancelling the wait cancels
    # a queued job and leaves a running one alone, and nothing here joins a thread
    return await loop.run_in_executor(executor, call)


async def stream_until_disconnect(
    agen: AsyncIterable[_T],
    *,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    executor: LoopSafeExecutor | None = None,
    poll_interval: float = 1.0,
) -> AsyncGenerator[_T, None]:
    """Yield the items of `agen` until the client goes away, then clean up without blocking.

    The stream ends when `agen` is exhausted or raises (the exception
    propagates), when the consumer stops it (the server cancels the response
    task, or calls `aclose()`, or the wrapper is garbage collected, which the
    event loop turns into `aclose()`), or when `is_disconnected()` (an async
    callable such as Starlette's `request.is_disconnected`) returns True. That
    check runs between items, at most every `poll_interval` seconds, and once
    before the first item, so a long wait for the next item is not interrupted
    by polling; a server that cancels the response on disconnect (Starlette
    under uvicorn) interrupts it instead.

    Whichever way it ends, the jobs this stream started in `executor` (the
    application's `LoopSafeExecutor`) and that are still pending are cancelled
    first (`executor.cancel_jobs`): a queued one never starts, a running one
    returns its thread to the pool when it ends; the executor stays open for
    the other streams and nothing is joined on the loop. Then `agen` is closed
    with `aclose()` so its own `finally` blocks run. A wrapper that was never
    iterated has started nothing and cleans nothing up. A `concurrent.futures`
    executor is refused (`TypeError`): it cannot tell this stream's jobs from
    the others', and shutting down a pool per stream is the leak this design
    avoids; the wait the stream was in is cancelled with it anyway.
    """
    iterator = aiter(agen)
    owner = asyncio.current_task()
    try:
        if executor is not None and not isinstance(executor, LoopSafeExecutor):
            raise TypeError(
                f"stream_until_disconnect cancels a stream's jobs in the application's "
                f"LoopSafeExecutor, not in a {type(executor).__name__}: pass the "
                "LoopSafeExecutor the stream runs its calls in, or no executor."
            )
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be >= 0 seconds, not {poll_interval!r}.")
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        while True:
            if is_disconnected is not None and loop.time() >= next_check:
                if await is_disconnected():
                    return
                next_check = loop.time() + poll_interval
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            yield item
    finally:
        try:
            if isinstance(executor, LoopSafeExecutor):
                executor.cancel_jobs(owner)  # synchronous: runs even if the loop is going away
        finally:
            await _aclose(iterator)


async def _aclose(iterator: object) -> None:
    """`aclose()` an async generator (or anything with one); other iterators need nothing."""
    aclose: Callable[[], Awaitable[object]] | None = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
