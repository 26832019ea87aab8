"""HD6xx: tasks that wait on one another while the loop is healthy."""

# The loop thread is idle in its selector and answers at once, so py-spy sees nothing and
# `/health` stays green; yet some requests never finish, because their tasks wait on a lock,
# a pool connection, a future, a limiter token or a stream that another task holds or will
# never deliver. No thread stack shows that: these entries have no frame signature
# (`frames=()`) and are recognised from the tasks of a running process (their await chains,
# what each waits on, who holds it; see `hangdoctor.analysis.tasks` and the wait patterns in
# `catalog.waits`). HD601 and HD602 also have a shape in source code that the static scan
# finds (`static=True`): two locks nested in opposite orders, a streamed response or a
# session never closed on every path (`scan.holds`).

from __future__ import annotations

from hangdoctor.catalog.rule import Rule

RULES = (
    Rule(
        code="HD601",
        name="await-deadlock",
        effect=(
            "takes its locks in the opposite order of another task: the two can wait on "
            "each other forever"
        ),
        summary="Tasks wait on one another in a cycle: a lock-order inversion or a self-await.",
        why=(
            "Task A holds `lock_a` and waits for `lock_b` inside `async with`, while task B "
            "holds `lock_b` and waits for `lock_a`. Neither wait can end, and `asyncio.Lock` "
            "has no timeout of its own, so both requests hang for ever; every later request "
            "that needs either lock queues behind them. The same cycle appears when a task "
            "awaits itself through a chain of tasks (A awaits B, B awaits a future only A "
            "resolves), or when a coroutine acquires an `asyncio.Lock` it already holds: "
            "the lock is not re-entrant, so the task waits on itself. The event loop is not "
            "blocked: it keeps serving every request that needs neither lock, `/health` "
            "included, so nothing restarts the process while the affected endpoints are dead."
        ),
        bad="""\
accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()

@app.post("/transfer")
async def transfer(t: Transfer):
    async with accounts_lock:
        await debit(t.source, t.amount)
        async with ledger_lock:  # waits for /close-day, which waits for us
            await ledger.append(t)

@app.post("/close-day")
async def close_day():
    async with ledger_lock:
        entries = await ledger.entries_today()
        async with accounts_lock:  # the opposite order: neither task ever runs again
            await apply_totals(entries)
""",
        good="""\
accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()

@asynccontextmanager
async def accounts_then_ledger(timeout: float = 5.0):
    \"\"\"The one lock order of this service: accounts_lock, then ledger_lock.\"\"\"
    async with asyncio.timeout(timeout):  # a deadlock becomes TimeoutError, not a hang
        await accounts_lock.acquire()
        try:
            await ledger_lock.acquire()
        except BaseException:
            accounts_lock.release()
            raise
    try:
        yield
    finally:
        ledger_lock.release()
        accounts_lock.release()

@app.post("/transfer")
async def transfer(t: Transfer):
    async with accounts_then_ledger():
        await debit(t.source, t.amount)
        await ledger.append(t)

@app.post("/close-day")
async def close_day():
    async with accounts_then_ledger():  # the same order as /transfer
        entries = await ledger.entries_today()
        await apply_totals(entries)
""",
        fix=(
            "Take locks in one global order everywhere (write it down, and take nested locks "
            "through one helper that enforces it), or replace the pair with a single lock. "
            "Put `asyncio.timeout()` around the acquisition so that a deadlock becomes a "
            "`TimeoutError` with a traceback instead of a silent hang. Never acquire an "
            "`asyncio.Lock` the task already holds: split the function into a locked public "
            "entry and an unlocked helper that callers holding the lock use. Do not await a "
            "task from inside the work it waits for."
        ),
        fix_min_python="3.11",
        fix_safety=(
            "Unsafe as an automatic fix: the right lock order, or whether two locks can "
            "become one, depends on what the locks protect."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=True,  # nested `async with` of two locks in opposite orders
        scan_calls=(),
        severity="error",
    ),
    Rule(
        code="HD602",
        name="pool-exhausted",
        effect="keeps a pooled connection until the response is closed",
        summary="Requests queue for a pool connection; every one is held and never given back.",
        why=(
            "HTTP clients and database drivers lend connections from a pool of K: "
            "httpx/httpcore's `AsyncConnectionPool` (`httpx.Limits(max_connections=...)`), "
            "aiohttp's `TCPConnector(limit=...)`, SQLAlchemy's async engine pool, asyncpg's "
            "pool, redis-py's asyncio `BlockingConnectionPool`. When K connections are held "
            "and not given back, the next N requests wait in the pool's queue; with the pool "
            "timeout disabled (or an asyncpg `acquire()` without one) they wait for ever. "
            "The usual holders are responses opened with `client.stream(...)` or "
            "`client.send(request, stream=True)` and never closed, and database sessions "
            "pinned for the whole life of an open SSE stream. The loop itself is idle, "
            "`/health` touches neither pool and answers at once, while every endpoint that "
            "needs the upstream or the database hangs."
        ),
        bad="""\
upstream = httpx.AsyncClient(
    base_url=UPSTREAM_URL,
    limits=httpx.Limits(max_connections=20),
    timeout=None,  # SSE can be quiet for minutes, so no timeouts at all, the pool's included
)

@app.get("/feed")
async def feed():
    request = upstream.build_request("GET", "/events")
    response = await upstream.send(request, stream=True)  # holds 1 of the 20 connections
    # never closed: a client that leaves keeps the connection checked out
    return StreamingResponse(response.aiter_raw(), media_type="text/event-stream")

@app.get("/quote/{sku}")
async def quote(sku: str):
    response = await upstream.get(f"/price/{sku}")  # the 21st caller waits for ever
    return response.json()
""",
        good="""\
upstream = httpx.AsyncClient(
    base_url=UPSTREAM_URL,
    limits=httpx.Limits(max_connections=20),
    # streams may be quiet (read=None), but nobody waits for a free connection over 5 s
    timeout=httpx.Timeout(10.0, read=None, pool=5.0),
)

@app.get("/feed")
async def feed():
    async def relay():
        # the connection is checked out while the stream runs and returned when it ends,
        # on a normal end, an error or the cancellation a client disconnect causes
        async with upstream.stream("GET", "/events") as response:
            async for chunk in response.aiter_raw():
                yield chunk

    return StreamingResponse(relay(), media_type="text/event-stream")

@app.get("/quote/{sku}")
async def quote(sku: str):
    response = await upstream.get(f"/price/{sku}")  # httpx.PoolTimeout after 5 s at worst
    return response.json()
""",
        fix=(
            "Open streamed responses with `async with client.stream(...)` inside the "
            "generator that relays them, or close them on every path: `await "
            "response.aclose()` in a `finally`. Do not hold a database session across a "
            "stream's lifetime; open one per event, or read what the stream needs before it "
            "starts. Give every pool a wait limit so exhaustion becomes an error with a "
            "traceback: `httpx.Timeout(..., pool=5.0)`, `pool_timeout=` on a SQLAlchemy "
            "engine, `pool.acquire(timeout=...)` for asyncpg, `timeout=` on redis-py's "
            "`BlockingConnectionPool`, `aiohttp.ClientTimeout(total=...)`. Size the pool for "
            "the number of streams the service keeps open, separately from short requests."
        ),
        fix_min_python="3.8",
        fix_safety=(
            "Unsafe as an automatic fix: closing a response earlier, or moving it into a "
            "generator, changes when its status and headers are known to the route."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=True,  # `stream=True` responses and `client.stream()` never closed
        scan_calls=(),
        severity="error",
    ),
    Rule(
        code="HD603",
        name="lost-wakeup",
        summary="A task awaits an Event, Future, Queue or stream no live task will set or feed.",
        why=(
            "An `await` on an `asyncio.Event`, a `Future`, a `Queue`, an anyio memory stream "
            "or the ASGI `receive` ends only when another task sets, resolves or feeds it. "
            "When that task is gone, the wait is for ever: a reader task that resolves "
            "requests by id died with an exception and left its pending futures "
            "unresolved (the exception sits unretrieved on a task nobody awaits); a "
            "middleware already consumed the request body, so the route's `receive` waits "
            "for a body that will not come; a `Queue` whose producer ended without a "
            "sentinel. The loop is idle and healthy, `/health` answers, and the requests "
            "that wait show no error at all, only a task suspended on an object no live "
            "task refers to."
        ),
        bad="""\
class UpstreamRPC:
    \"\"\"Many requests share one connection; a reader task resolves their futures by id.\"\"\"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self):
        while True:
            line = await self._reader.readline()
            msg = json.loads(line)  # b"" at EOF raises: the task dies, nobody notices
            self._pending.pop(msg["id"]).set_result(msg["result"])

    async def call(self, method: str, params: dict):
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        request = {"id": rid, "method": method, "params": params}
        self._writer.write(json.dumps(request).encode() + b"\\n")
        await self._writer.drain()
        return await fut  # once the reader died, nothing will ever resolve it
""",
        good="""\
class UpstreamRPC:
    \"\"\"Many requests share one connection; a reader task resolves their futures by id.\"\"\"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self):
        try:
            while line := await self._reader.readline():  # b"": the upstream closed
                msg = json.loads(line)
                fut = self._pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg["result"])
        finally:
            # however the reader ends, every caller still waiting gets an error
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("upstream reader stopped"))
            self._pending.clear()

    async def call(self, method: str, params: dict, timeout: float = 10.0):
        if self._task.done():
            raise ConnectionError("upstream reader stopped")
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        request = {"id": rid, "method": method, "params": params}
        self._writer.write(json.dumps(request).encode() + b"\\n")
        await self._writer.drain()
        async with asyncio.timeout(timeout):  # a lost reply is an error, not a hang
            return await fut
""",
        fix=(
            "Make whoever resolves a wait answer for it when it dies: a resolver task sets "
            "an exception on every pending future in `finally` (`fut.set_exception(...)`), a "
            "producer puts a sentinel or closes its memory stream in `finally`. Put a "
            "timeout on waits that depend on another task (`asyncio.timeout()`, "
            "`anyio.fail_after()`). Run related tasks in a `TaskGroup` (or an anyio task "
            "group) so that one task's death cancels the others instead of leaving them "
            "waiting. In middleware, do not read the body from `receive` without replaying "
            "it to the app."
        ),
        fix_min_python="3.11",
        fix_safety=(
            "Unsafe as an automatic fix: which exception a waiter should get, and how long "
            "a wait may last, are decisions of the protocol."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=False,
        severity="error",
    ),
    Rule(
        code="HD604",
        name="limiter-exhausted",
        summary="Every token of a limiter or semaphore is held by work that does not return.",
        why=(
            "A `CapacityLimiter`, an `asyncio.Semaphore`, an `anyio.Semaphore` or AnyIO's "
            "thread limiter lets K tasks in; the next ones wait in `acquire()`. When all K "
            "tokens are held by work that never returns (an upstream call without a "
            "timeout, a permit taken with `acquire()` and not released on an error path), "
            "every later request waits in the limiter for ever, whatever size it was given. "
            "The loop is idle and `/health`, which takes no token, answers at once. HD401 "
            "is the thread-stack view of one case of this, AnyIO's default 40-thread "
            "limiter held by sync routes; HD604 is seen from the waiting tasks, for any "
            "limiter, with its real size (`total_tokens` changed at startup included) and "
            "the tasks that hold its tokens."
        ),
        bad="""\
pricing = httpx.AsyncClient(base_url=PRICING_URL, timeout=None)
pricing_slots = asyncio.Semaphore(10)  # at most 10 calls to the pricing service at once

@app.get("/quote/{sku}")
async def quote(sku: str):
    await pricing_slots.acquire()
    response = await pricing.get(f"/price/{sku}")  # no timeout: a stalled call keeps its slot
    response.raise_for_status()  # an error leaks the slot: it is never released
    pricing_slots.release()
    return {"sku": sku, "price": response.json()["price"]}
""",
        good="""\
pricing = httpx.AsyncClient(base_url=PRICING_URL, timeout=httpx.Timeout(5.0))
pricing_slots = asyncio.Semaphore(10)  # at most 10 calls to the pricing service at once

@app.get("/quote/{sku}")
async def quote(sku: str):
    try:
        async with asyncio.timeout(2):  # wait at most 2 s for a slot
            await pricing_slots.acquire()
    except TimeoutError:
        raise HTTPException(503, "pricing service saturated") from None
    try:
        response = await pricing.get(f"/price/{sku}")  # bounded: 5 s per phase
        response.raise_for_status()
    finally:
        pricing_slots.release()  # on every path, errors and cancellation included
    return {"sku": sku, "price": response.json()["price"]}
""",
        fix=(
            "Bound the work done while a token is held: timeouts on upstream calls and on "
            "the whole block (`asyncio.timeout()`, `anyio.fail_after()`). Release in "
            "`finally`, or better, use `async with limiter:` so no path leaks a token. Put "
            "a timeout on waiting for a token and answer 503 when it expires, so a "
            "saturated dependency fails fast instead of queueing every request. Size the "
            "limiter for the work it guards, and never share one limiter between slow work "
            "and health or other quick paths."
        ),
        fix_min_python="3.11",
        fix_safety=(
            "Unsafe as an automatic fix: the right timeouts, and what to answer when a "
            "token is not available, depend on the service."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=False,
        severity="error",
    ),
    Rule(
        code="HD605",
        name="stream-after-disconnect",
        summary="A streaming response runs on, or holds a resource, after its client has left.",
        why=(
            "A streaming response notices that its client is gone only when it writes, or "
            "when it asks (`await request.is_disconnected()`). A generator that waits a "
            "long time between events, on a queue, a pub/sub channel or an upstream "
            "stream, goes on waiting after the client left, and keeps what it holds: a "
            "pool connection, a database session, a lock, a limiter token. A few hundred "
            "abandoned streams drain the pool (HD602) or the limiter (HD604), and new "
            "requests wait while the loop is idle and `/health` is green. Writing is no "
            "cure by itself: uvicorn drops what a response sends after its client left, "
            "without an error, so a generator that never reads `receive` (or asks) streams "
            "on for ever into nothing. HD301 is the static finding, a generator that never "
            "checks for a disconnect; HD605 is the live evidence: a stream task whose client "
            "has gone, still waiting, or still sending past `stuck_after` (the middleware "
            "sees uvicorn's own flag), and what it still holds."
        ),
        bad="""\
@app.get("/orders/{order_id}/events")
async def order_events(order_id: int):
    async def gen():
        # one pooled DB connection for as long as the stream lives, client or no client
        async with SessionLocal() as session:
            async with broker.subscribe(f"order:{order_id}") as updates:  # an asyncio.Queue
                while True:
                    await updates.get()  # a quiet order: no event, no write, for hours
                    order = await session.get(Order, order_id, populate_existing=True)
                    yield f"data: {order.status}\\n\\n"

    return StreamingResponse(gen(), media_type="text/event-stream")
""",
        good="""\
@app.get("/orders/{order_id}/events")
async def order_events(order_id: int, request: Request):
    async def gen():
        async with broker.subscribe(f"order:{order_id}") as updates:  # an asyncio.Queue
            while not await request.is_disconnected():
                try:
                    async with asyncio.timeout(15):
                        await updates.get()
                except TimeoutError:
                    yield ": keep-alive\\n\\n"  # a write: a client that left is noticed
                    continue
                async with SessionLocal() as session:  # a DB connection per event
                    order = await session.get(Order, order_id)
                yield f"data: {order.status}\\n\\n"
        # leaving the `async with`, on a disconnect or a cancellation, releases everything

    return StreamingResponse(gen(), media_type="text/event-stream")
""",
        fix=(
            "Check `await request.is_disconnected()` in the stream's loop and write a "
            "keep-alive comment when it is quiet, so a client that left is noticed within "
            "seconds; on a disconnect, stop and cancel the work the stream started. Hold "
            "pool connections, sessions, locks and limiter tokens per event, not per stream, "
            "and release them in `finally` (or `async with`), so a cancelled stream gives "
            "them back at once."
        ),
        fix_min_python="3.11",
        fix_safety=(
            "Unsafe as an automatic fix: the generator needs the request object, and where "
            "to release a resource depends on what it protects."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=False,
        severity="error",
    ),
    Rule(
        code="HD606",
        name="shutdown-wait",
        summary="A server shutting down waits for streams, tasks or threads that never end.",
        why=(
            "On SIGTERM uvicorn stops accepting connections, then waits for every open "
            "connection and background task to finish before it runs the lifespan "
            "shutdown; without `--timeout-graceful-shutdown` that wait has no limit, and an "
            "SSE stream never finishes by itself. A lifespan that awaits a background task "
            "that loops for ever never returns, and `asyncio.run` joins the default "
            "executor's threads at exit (with no limit before Python 3.12, 300 s since, and "
            "the interpreter then joins them again), so one thread stuck in a call without "
            "a timeout keeps the process alive. The loop is healthy and open streams keep "
            "flowing; the process just never exits, so deploys stall until the orchestrator "
            "sends SIGKILL, which skips the cleanup the graceful shutdown was for."
        ),
        bad="""\
@asynccontextmanager
async def lifespan(app: FastAPI):
    refresher = asyncio.create_task(refresh_prices_forever())
    yield
    await refresher  # a loop that never ends: the process never exits

app = FastAPI(lifespan=lifespan)

@app.get("/prices/stream")
async def price_stream():
    async def gen():
        while True:  # an open stream never finishes, and uvicorn waits for it
            yield f"data: {await prices.changed()}\\n\\n"

    return StreamingResponse(gen(), media_type="text/event-stream")

if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=8000)
""",
        good="""\
@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = ThreadPoolExecutor(max_workers=8)
    refresher = asyncio.create_task(refresh_prices_forever())
    try:
        yield
    finally:  # runs once the open streams have ended or been cancelled
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        app.state.pool.shutdown(wait=False, cancel_futures=True)

app = FastAPI(lifespan=lifespan)

@app.get("/prices/stream")
async def price_stream():
    async def gen():
        while True:
            yield f"data: {await prices.changed()}\\n\\n"

    return StreamingResponse(gen(), media_type="text/event-stream")

if __name__ == "__main__":
    # on SIGTERM, wait at most 10 s for open streams and tasks, then cancel them
    uvicorn.run(app, host="0.0.0.0", port=8000, timeout_graceful_shutdown=10)
""",
        fix=(
            "Bound the server's wait: `uvicorn --timeout-graceful-shutdown 10` (or "
            "`timeout_graceful_shutdown=` in `uvicorn.run`; hypercorn's `graceful_timeout`), "
            "shorter than the orchestrator's grace period. End streams on shutdown: have "
            "them watch an `asyncio.Event` set when the server begins to stop (uvicorn runs "
            "the lifespan shutdown only after open connections end, so a stream cannot wait "
            "for that), or rely on the graceful timeout to cancel them. Cancel background "
            "tasks in the lifespan shutdown instead of awaiting them, and shut executors "
            "down with `shutdown(wait=False, cancel_futures=True)`; give blocking calls in "
            "threads timeouts, since a running thread cannot be cancelled."
        ),
        fix_min_python="3.9",
        fix_safety=(
            "Unsafe as an automatic fix: how long to wait, and what a stream should send "
            "its client before it ends, are decisions of the service."
        ),
        frames=(),
        live=True,
        tasks=True,
        static=False,
        severity="error",
    ),
)
