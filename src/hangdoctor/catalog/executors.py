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
UPSTREAM_WORKERS = 8  # upstream calls the whole application runs at once

@asynccontextmanager
async def lifespan(app):
    # one executor per application: created at startup, sized, never joined on the loop
    app.state.pool = ThreadPoolExecutor(max_workers=UPSTREAM_WORKERS)
    try:
        yield
    finally:
        app.state.pool.shutdown(wait=False, cancel_futures=True)

async def gen(request):
    pool = request.app.state.pool
    while True:
        # a disconnect cancels this await, and with it the job if it has not started
        item = await loop.run_in_executor(pool, fetch_news)  # fetch_news has a timeout
        yield f"data: {item}\\n\\n"
""",
        fix=(
            "Use one executor per application, never one per request or stream: create it at "
            "startup with a fixed `max_workers`, pass it to `loop.run_in_executor(pool, fn)`, "
            "and call `pool.shutdown(wait=False, cancel_futures=True)` when the application's "
            "lifespan ends (or use the loop's default executor, "
            "`loop.run_in_executor(None, fn)`, which asyncio creates and shuts down). Await the "
            "future the call returns: when the client disconnects, the cancellation cancels "
            "it, and a job that has not started never runs. Give the upstream call a timeout "
            "(`httpx.get(url, timeout=5)`): a running job cannot be interrupted, so the "
            "timeout is what bounds how long a thread stays busy after its client left. Do "
            "not keep a pool per stream and shut it down with `wait=False`: the loop no longer "
            "waits, but each dropped stream leaves its worker thread running until the call "
            "returns (80 dropped streams, 80 more threads). `scan --fix` removes the `with` "
            "block and runs its jobs in the loop's default executor; "
            "`hangdoctor.executors.LoopSafeExecutor` is the application executor ready-made."
        ),
        fix_min_python="3.9",
        fix_safety=(
            "Safe: the block's jobs still run in threads and are still awaited, in the loop's "
            "default executor (`min(32, CPUs + 4)` threads, shared by the whole loop) instead "
            "of a pool of the block's own; nothing is joined on the loop, and the threads are "
            "bounded by that pool, not by the number of requests. A ProcessPoolExecutor, or a "
            "pool with an `initializer`, "
            "is not rewritten (the fixer says why). An explicit `shutdown()` becomes "
            "`shutdown(wait=False, cancel_futures=True)`; `cancel_futures` needs Python 3.9, "
            "below that `wait=False` alone."
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
