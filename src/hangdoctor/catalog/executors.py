"""HD1xx: waiting on executors and their futures from the event loop."""

from __future__ import annotations

from hangdoctor.catalog.rule import FramePattern, Rule

RULES = (
    Rule(
        code="HD101",
        name="executor-shutdown-on-loop",
        effect="waits for the executor's worker threads on the event loop",
        summary="An executor is shut down with wait=True on the event-loop thread.",
        why=(
            "Leaving a `with ThreadPoolExecutor()` (or ProcessPoolExecutor) block calls "
            "`shutdown(wait=True)`, which joins every worker thread. In async code that join "
            "runs on the event-loop thread, so the loop stops until the slowest pending job "
            "returns. The classic trigger is a streaming (SSE) generator: the client "
            "disconnects, the generator is cancelled, `__exit__` runs and joins a worker that "
            "is still inside a slow upstream call; every request, health checks included, "
            "waits for it."
        ),
        bad="""\
async def gen():
    with ThreadPoolExecutor(max_workers=2) as ex:  # __exit__ joins the workers
        while True:
            item = await loop.run_in_executor(ex, fetch_news)
            yield f"data: {item}\\n\\n"
""",
        good="""\
async def gen():
    ex = ThreadPoolExecutor(max_workers=2)
    pending: set[asyncio.Future[str]] = set()
    try:
        while True:
            fut = loop.run_in_executor(ex, fetch_news)
            pending.add(fut)
            item = await fut
            pending.discard(fut)
            yield f"data: {item}\\n\\n"
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=False, cancel_futures=True)  # never join on the loop
""",
        fix=(
            "Create the executor outside a `with` block (or once per application), cancel "
            "pending futures when the client disconnects, and call "
            "`shutdown(wait=False, cancel_futures=True)` in `finally`. The running job "
            "finishes in the background; the loop never waits for it."
        ),
        fix_min_python="3.9",
        fix_safety=(
            "Safe: work already running still completes, but no longer delays the loop. "
            "`cancel_futures` needs Python 3.9; below that use `wait=False` alone."
        ),
        frames=(
            FramePattern("concurrent/futures/_base.py", "Executor.__exit__"),
            FramePattern("concurrent/futures/thread.py", "ThreadPoolExecutor.shutdown"),
            FramePattern("concurrent/futures/process.py", "ProcessPoolExecutor.shutdown"),
        ),
        calls=(
            "concurrent.futures.ThreadPoolExecutor.shutdown",
            "concurrent.futures.ProcessPoolExecutor.shutdown",
            "concurrent.futures.Executor.shutdown",
            # leaving `with executor:` is shutdown(wait=True)
            "concurrent.futures.ThreadPoolExecutor.__exit__",
            "concurrent.futures.ProcessPoolExecutor.__exit__",
            "concurrent.futures.Executor.__exit__",
        ),
        methods=("shutdown",),
    ),
    Rule(
        code="HD102",
        name="concurrent-future-wait-on-loop",
        effect="blocks the event loop until the future is done",
        summary="Async code waits on a concurrent.futures.Future with a blocking call.",
        why=(
            "`Future.result()`, `concurrent.futures.wait()` and `as_completed()` block the "
            "calling thread until another thread or process finishes the job. Called from a "
            "coroutine they block the event-loop thread, so no other request is served "
            "until the job is done."
        ),
        bad="""\
@app.get("/report")
async def report():
    fut = pool.submit(build_report)
    return fut.result()  # blocks the loop until build_report returns
""",
        good="""\
@app.get("/report")
async def report():
    fut = pool.submit(build_report)
    return await asyncio.wrap_future(fut)  # the loop keeps serving meanwhile
""",
        fix=(
            "Await the future instead: `await asyncio.wrap_future(fut)`, or submit with "
            "`await loop.run_in_executor(pool, fn)`. For several futures use "
            "`asyncio.gather(*map(asyncio.wrap_future, futs))` or `asyncio.wait`."
        ),
        fix_min_python="3.7",
        fix_safety="Safe for `concurrent.futures.Future` objects; the result is the same.",
        frames=(
            FramePattern("concurrent/futures/_base.py", "Future.result"),
            FramePattern("concurrent/futures/_base.py", "Future.exception"),
            FramePattern("concurrent/futures/_base.py", "wait"),
            FramePattern("concurrent/futures/_base.py", "as_completed"),
        ),
        calls=(
            "concurrent.futures.wait",
            "concurrent.futures.as_completed",
            "concurrent.futures.Future.result",
            "concurrent.futures.Future.exception",
        ),
        methods=("result",),
    ),
)
