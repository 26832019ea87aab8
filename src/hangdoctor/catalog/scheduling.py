"""HD4xx, HD5xx, HD9xx: starvation, CPU work on the loop, and the unknown."""

from __future__ import annotations

from hangdoctor.catalog.rule import Rule

RULES = (
    Rule(
        code="HD401",
        name="worker-thread-starvation",
        summary="All AnyIO worker threads are busy, so sync routes queue though the loop is idle.",
        why=(
            "Starlette and FastAPI run sync `def` routes and dependencies on AnyIO's worker "
            "threads, limited to 40 by default. When 40 slow sync calls are in flight, the "
            "next sync route (a sync `/health` included) waits for a free thread. The event "
            "loop looks idle, async routes still answer, and py-spy shows nothing blocked, "
            "yet the health check times out and the orchestrator restarts a healthy process."
        ),
        bad="""\
@app.get("/report")
def report():  # sync: takes one of the 40 worker threads for 30 s
    return build_report_slowly()

@app.get("/health")
def health():  # sync: queues behind the reports
    return {"status": "ok"}
""",
        good="""\
@app.get("/report")
async def report():
    return await asyncio.wait_for(build_report_async(), timeout=10)

@app.get("/health")
async def health():  # async: never needs a worker thread
    return {"status": "ok"}
""",
        fix=(
            "Make health checks `async def`. Bound slow sync work with timeouts, make it "
            "async, or give it its own executor; raise the limit only with measured care: "
            "`anyio.to_thread.current_default_thread_limiter().total_tokens = N`."
        ),
        fix_min_python="3.8",
        fix_safety="Unsafe as an automatic fix: it changes where code runs.",
        static=False,
    ),
    Rule(
        code="HD501",
        name="cpu-bound-on-loop",
        effect="runs CPU-heavy work on the event loop",
        summary="CPU-bound Python work runs on the event-loop thread.",
        why=(
            "A coroutine that computes for a long time (parsing, hashing, compression, "
            "template rendering, a big loop) never reaches an `await`, so the loop cannot "
            "switch to other requests. Latency of every request grows by the length of the "
            "computation."
        ),
        bad="""\
@app.post("/score")
async def score(doc: Doc):
    return {"score": rank(doc.text)}  # seconds of pure-Python work
""",
        good="""\
pool = ProcessPoolExecutor()

@app.post("/score")
async def score(doc: Doc):
    loop = asyncio.get_running_loop()
    return {"score": await loop.run_in_executor(pool, rank, doc.text)}
""",
        fix=(
            "Move the work to a process pool (`loop.run_in_executor(ProcessPoolExecutor(), "
            "fn, ...)`), to a thread if it releases the GIL (NumPy, hashlib, zlib), or split "
            "it with `await asyncio.sleep(0)` between chunks."
        ),
        fix_min_python="3.7",
        fix_safety="Unsafe as an automatic fix: arguments must be picklable for a process pool.",
        calls=(
            "json.loads",
            "json.dumps",
            "hashlib.pbkdf2_hmac",
            "hashlib.scrypt",
            "re.match",
            "re.search",
            "re.fullmatch",
            "re.sub",
            "zlib.compress",
            "zlib.decompress",
            "gzip.compress",
            "gzip.decompress",
            "bz2.compress",
            "bz2.decompress",
            "lzma.compress",
            "lzma.decompress",
            "bcrypt.hashpw",
            "bcrypt.checkpw",
            "bcrypt.kdf",
            "argon2.PasswordHasher.hash",
            "argon2.PasswordHasher.verify",
        ),
        # in review, only work that is heavy by design: a small `json.loads` is fine
        scan_calls=(
            "hashlib.pbkdf2_hmac",
            "hashlib.scrypt",
            "bcrypt.hashpw",
            "bcrypt.checkpw",
            "bcrypt.kdf",
            "argon2.PasswordHasher.hash",
            "argon2.PasswordHasher.verify",
            "zlib.compress",
            "zlib.decompress",
            "gzip.compress",
            "gzip.decompress",
            "bz2.compress",
            "bz2.decompress",
            "lzma.compress",
            "lzma.decompress",
        ),
        severity="warning",
    ),
    Rule(
        code="HD900",
        name="blocked-unknown",
        summary="The event loop is blocked by a call that is not in the catalog.",
        why=(
            "The loop thread stayed inside the same callback in every sample, so nothing "
            "else could run, but the call it waits in is not one hangdoctor knows. The user "
            "frame and its source line below are where the loop stopped."
        ),
        bad="""\
async def handler():
    vendor_sdk.fetch_blocking()  # some synchronous call
""",
        good="""\
async def handler():
    await asyncio.to_thread(vendor_sdk.fetch_blocking)
""",
        fix=(
            "Make the call asynchronous, or run it off the loop with "
            "`await asyncio.to_thread(fn, *args)`. Run `hangdoctor diagnose --native` to "
            "see the C frames the call waits in."
        ),
        fix_min_python="3.9",
        fix_safety="Unsafe as an automatic fix.",
        static=False,
    ),
)
