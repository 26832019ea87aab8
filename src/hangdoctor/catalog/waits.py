"""What a suspended task waits on, told from the library frames of its await chain.

The HD6xx analysis needs to know, for every task, what its innermost await is:
a lock, a semaphore, a connection from a pool, the request body... Every
source gives the await chain (innermost first); this table turns the library
frames of that chain into a `WaitKind` and the type the user would recognise.
It is knowledge, like the rules' stack signatures, so it lives in the catalog
and is written once for the in-process runtime and for CPython 3.14's remote
reader alike.

Matching is the analysis's job (`analysis.tasks`); this module only says what
each frame means. Two kinds of entries. A *wait* names the frame a task sleeps in (`Lock.acquire`
in asyncio/locks.py). A *container* names a frame that, anywhere between the
innermost frame and the first user frame, says what the inner wait is for:
httpcore waits for a pool connection on an anyio Event, SQLAlchemy's async
pool on an asyncio Queue behind a greenlet; there the container wins, or a
pool wait would read as "an Event nobody sets".
"""

from __future__ import annotations

from dataclasses import dataclass

from hangdoctor.catalog.rule import FramePattern
from hangdoctor.model import WaitKind

__all__ = ["CONTAINED", "CONTAINERS", "WAITS", "WaitPattern"]


@dataclass(frozen=True)
class WaitPattern:
    """A library frame and what a task stopped in (or under) it waits on."""

    frame: FramePattern
    kind: WaitKind
    type: str  # as the user knows it: "asyncio.Lock", "httpcore.AsyncConnectionPool"
    # a container: the inner waits it re-labels (None: those CONTAINED lists for its kind)
    contains: frozenset[WaitKind] | None = None


def _w(
    path: str,
    function: str | None,
    kind: WaitKind,
    type_: str,
    contains: frozenset[WaitKind] | None = None,
) -> WaitPattern:
    return WaitPattern(FramePattern(path, function), kind, type_, contains)


# SQLAlchemy's async pool checks a connection out of an asyncio Queue behind a greenlet;
# the same greenlet also awaits the driver (a socket, a thread): only the queue is the pool
_SQLALCHEMY = frozenset({WaitKind.QUEUE})


_ASYNCIO_LOCKS = "asyncio/locks.py"
_ANYIO_ASYNCIO = "anyio/_backends/_asyncio.py"
_ANYIO_SYNC = "anyio/_core/_synchronization.py"

# innermost first wins among these: the frame the task sleeps in
WAITS: tuple[WaitPattern, ...] = (
    _w(_ASYNCIO_LOCKS, "Lock.acquire", WaitKind.LOCK, "asyncio.Lock"),
    _w(_ASYNCIO_LOCKS, "Semaphore.acquire", WaitKind.SEMAPHORE, "asyncio.Semaphore"),
    _w(_ASYNCIO_LOCKS, "Event.wait", WaitKind.EVENT, "asyncio.Event"),
    _w(_ASYNCIO_LOCKS, "Condition.wait", WaitKind.CONDITION, "asyncio.Condition"),
    _w(_ASYNCIO_LOCKS, "Condition.wait_for", WaitKind.CONDITION, "asyncio.Condition"),
    _w(_ASYNCIO_LOCKS, "Barrier.wait", WaitKind.CONDITION, "asyncio.Barrier"),
    _w("asyncio/queues.py", "Queue.get", WaitKind.QUEUE, "asyncio.Queue"),
    _w("asyncio/queues.py", "Queue.put", WaitKind.QUEUE, "asyncio.Queue"),
    _w("asyncio/queues.py", "Queue.join", WaitKind.QUEUE, "asyncio.Queue"),
    _w("asyncio/tasks.py", "sleep", WaitKind.SLEEP, "asyncio.sleep"),
    _w("asyncio/tasks.py", "wait", WaitKind.TASK, "asyncio.wait"),
    _w("asyncio/tasks.py", "_wait", WaitKind.TASK, "asyncio.wait"),
    _w("asyncio/taskgroups.py", None, WaitKind.TASK, "asyncio.TaskGroup"),
    _w("asyncio/threads.py", "to_thread", WaitKind.THREAD, "asyncio.to_thread"),
    _w("asyncio/streams.py", None, WaitKind.IO, "asyncio.StreamReader"),
    _w("asyncio/selector_events.py", None, WaitKind.IO, "a socket"),
    _w(
        "asyncio/base_events.py",
        "BaseEventLoop.shutdown_default_executor",
        WaitKind.SHUTDOWN,
        "the default executor",
    ),
    _w("asyncio/base_events.py", "BaseEventLoop.getaddrinfo", WaitKind.THREAD, "getaddrinfo"),
    _w(_ANYIO_ASYNCIO, "Lock.acquire", WaitKind.LOCK, "anyio.Lock"),
    _w(_ANYIO_ASYNCIO, "Semaphore.acquire", WaitKind.SEMAPHORE, "anyio.Semaphore"),
    _w(_ANYIO_ASYNCIO, "CapacityLimiter.acquire", WaitKind.LIMITER, "anyio.CapacityLimiter"),
    _w(
        _ANYIO_ASYNCIO,
        "CapacityLimiter.acquire_on_behalf_of",
        WaitKind.LIMITER,
        "anyio.CapacityLimiter",
    ),
    _w(_ANYIO_ASYNCIO, "Event.wait", WaitKind.EVENT, "anyio.Event"),
    _w(_ANYIO_ASYNCIO, "SocketStream.receive", WaitKind.IO, "a socket"),
    _w(_ANYIO_ASYNCIO, "SocketStream.send", WaitKind.IO, "a socket"),
    _w("httpcore/_backends/anyio.py", "AnyIOStream.read", WaitKind.IO, "a connection"),
    _w("httpcore/_backends/anyio.py", "AnyIOStream.write", WaitKind.IO, "a connection"),
    _w("aiohttp/streams.py", None, WaitKind.IO, "a connection"),
    _w(_ANYIO_ASYNCIO, "TaskGroup.__aexit__", WaitKind.TASK, "anyio.TaskGroup"),
    _w(_ANYIO_ASYNCIO, "run_sync_in_worker_thread", WaitKind.THREAD, "anyio.to_thread"),
    _w(
        _ANYIO_ASYNCIO,
        "AsyncIOBackend.run_sync_in_worker_thread",  # anyio 4
        WaitKind.THREAD,
        "anyio.to_thread",
    ),
    _w(_ANYIO_SYNC, "Lock.acquire", WaitKind.LOCK, "anyio.Lock"),
    _w(_ANYIO_SYNC, "Semaphore.acquire", WaitKind.SEMAPHORE, "anyio.Semaphore"),
    _w(_ANYIO_SYNC, "CapacityLimiter.acquire", WaitKind.LIMITER, "anyio.CapacityLimiter"),
    _w(
        _ANYIO_SYNC,
        "CapacityLimiter.acquire_on_behalf_of",
        WaitKind.LIMITER,
        "anyio.CapacityLimiter",
    ),
    _w(_ANYIO_SYNC, "Event.wait", WaitKind.EVENT, "anyio.Event"),
    _w(_ANYIO_SYNC, "Condition.wait", WaitKind.CONDITION, "anyio.Condition"),
    _w(
        "anyio/streams/memory.py",
        "MemoryObjectReceiveStream.receive",
        WaitKind.STREAM,
        "anyio memory object stream",
    ),
    _w(
        "anyio/streams/memory.py",
        "MemoryObjectSendStream.send",
        WaitKind.STREAM,
        "anyio memory object stream",
    ),
    _w(
        "uvicorn/protocols/http/h11_impl.py",
        "RequestResponseCycle.receive",
        WaitKind.RECEIVE,
        "ASGI receive",
    ),
    _w(
        "uvicorn/protocols/http/httptools_impl.py",
        "RequestResponseCycle.receive",
        WaitKind.RECEIVE,
        "ASGI receive",
    ),
)

# anywhere between the innermost frame and the first user frame: what the inner wait is for
CONTAINERS: tuple[WaitPattern, ...] = (
    _w(
        "httpcore/_async/connection_pool.py",
        "AsyncPoolRequest.wait_for_connection",
        WaitKind.POOL,
        "httpcore.AsyncConnectionPool",
    ),
    _w(
        "httpcore/_async/connection_pool.py",
        "PoolRequest.wait_for_connection",
        WaitKind.POOL,
        "httpcore.AsyncConnectionPool",
    ),
    _w(
        "aiohttp/connector.py",
        "BaseConnector._wait_for_available_connection",
        WaitKind.POOL,
        "aiohttp.TCPConnector",
    ),
    _w(
        "sqlalchemy/util/_concurrency_py3k.py",  # SQLAlchemy 2.0
        "greenlet_spawn",
        WaitKind.POOL,
        "SQLAlchemy pool",
        _SQLALCHEMY,
    ),
    _w(
        "sqlalchemy/util/concurrency.py",  # SQLAlchemy 2.1
        "greenlet_spawn",
        WaitKind.POOL,
        "SQLAlchemy pool",
        _SQLALCHEMY,
    ),
    _w("asyncpg/pool.py", "Pool._acquire", WaitKind.POOL, "asyncpg.Pool"),
    _w(
        "redis/asyncio/connection.py",
        "BlockingConnectionPool.get_connection",
        WaitKind.POOL,
        "redis.asyncio.BlockingConnectionPool",
    ),
    _w("anyio/to_thread.py", "run_sync", WaitKind.LIMITER, "AnyIO's thread limiter"),
    _w("starlette/requests.py", "Request.stream", WaitKind.RECEIVE, "the request body"),
    _w("starlette/requests.py", "Request.body", WaitKind.RECEIVE, "the request body"),
    _w("uvicorn/server.py", "Server.shutdown", WaitKind.SHUTDOWN, "uvicorn's shutdown"),
    _w(
        "uvicorn/server.py",
        "Server._wait_tasks_to_complete",
        WaitKind.SHUTDOWN,
        "uvicorn's shutdown",
    ),
)

# a container only re-labels these inner waits (a pool's queue or event, the limiter's own
# acquire): an SQLAlchemy query waiting on the database's socket is not waiting for the pool
CONTAINED: dict[WaitKind, frozenset[WaitKind]] = {
    WaitKind.POOL: frozenset(
        {WaitKind.EVENT, WaitKind.QUEUE, WaitKind.CONDITION, WaitKind.SEMAPHORE, WaitKind.UNKNOWN}
    ),
    WaitKind.LIMITER: frozenset({WaitKind.LIMITER}),
    WaitKind.RECEIVE: frozenset({WaitKind.RECEIVE, WaitKind.EVENT, WaitKind.UNKNOWN}),
    WaitKind.SHUTDOWN: frozenset(
        {WaitKind.SLEEP, WaitKind.TASK, WaitKind.EVENT, WaitKind.UNKNOWN, WaitKind.SHUTDOWN}
    ),
}
