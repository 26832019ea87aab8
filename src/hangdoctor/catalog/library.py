"""What the static scan knows about library APIs, beyond which calls block.

The rules say which callables block (`Rule.calls`); to see that `s.get(url)`
is `requests.Session.get`, the scan must know what type `s` has. These tables
say what a call returns when the name of the callable does not (a class
returns an instance of itself; these are the factories and methods that return
something else), which names are the same class under another module path,
and which arguments make a blocking call return at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "ALIASES",
    "CANCELLATION",
    "NONBLOCKING_FLAGS",
    "NONBLOCKING_KEYWORDS",
    "NONBLOCKING_SETUP",
    "RETURNS",
    "UNKNOWN_RECEIVER_RETURNS",
]

_FUTURE = "concurrent.futures.Future"
_FILE = "io.IOBase"
_PATH = "pathlib.Path"

# callable (fully qualified) -> the type of what it returns
RETURNS: Mapping[str, str] = MappingProxyType(
    {
        "requests.session": "requests.Session",
        "socket.socket": "socket.socket",
        "socket.create_connection": "socket.socket",
        "socket.create_server": "socket.socket",
        "socket.fromfd": "socket.socket",
        "socket.socket.accept": "builtins.tuple",
        "socket.socket.dup": "socket.socket",
        "ssl.wrap_socket": "socket.socket",
        "ssl.SSLContext.wrap_socket": "socket.socket",
        "sqlite3.connect": "sqlite3.Connection",
        "sqlite3.Connection.cursor": "sqlite3.Cursor",
        "sqlite3.Connection.execute": "sqlite3.Cursor",
        "sqlite3.Cursor.execute": "sqlite3.Cursor",
        "psycopg2.connect": "psycopg2.extensions.connection",
        "psycopg2.extensions.connection.cursor": "psycopg2.extensions.cursor",
        "redis.from_url": "redis.Redis",
        "redis.Redis.from_url": "redis.Redis",
        "urllib.request.build_opener": "urllib.request.OpenerDirector",
        "concurrent.futures.ThreadPoolExecutor.submit": _FUTURE,
        "concurrent.futures.ProcessPoolExecutor.submit": _FUTURE,
        "concurrent.futures.Executor.submit": _FUTURE,
        "asyncio.run_coroutine_threadsafe": _FUTURE,
        "asyncio.get_event_loop": "asyncio.AbstractEventLoop",
        "asyncio.get_running_loop": "asyncio.AbstractEventLoop",
        "asyncio.new_event_loop": "asyncio.AbstractEventLoop",
        "asyncio.AbstractEventLoop.run_in_executor": "asyncio.Future",
        "asyncio.AbstractEventLoop.create_task": "asyncio.Task",
        "asyncio.create_task": "asyncio.Task",
        "asyncio.ensure_future": "asyncio.Future",
        "asyncio.wrap_future": "asyncio.Future",
        "threading.current_thread": "threading.Thread",
        "open": _FILE,
        "io.open": _FILE,
        "pathlib.Path.open": _FILE,
        "pathlib.Path.cwd": _PATH,
        "pathlib.Path.home": _PATH,
        "pathlib.Path.resolve": _PATH,
        "pathlib.Path.absolute": _PATH,
        "pathlib.Path.expanduser": _PATH,
        "pathlib.Path.joinpath": _PATH,
        "pathlib.Path.with_name": _PATH,
        "pathlib.Path.with_suffix": _PATH,
        "pathlib.Path.with_stem": _PATH,
        "pathlib.Path.relative_to": _PATH,
        "subprocess.Popen": "subprocess.Popen",
    }
)

# a method name called on an object of unknown type -> what it returns, where every
# library that has the method agrees: `.submit()` gives a future whose `.result()` blocks
UNKNOWN_RECEIVER_RETURNS: Mapping[str, str] = MappingProxyType({"submit": _FUTURE})

# another module path or name for the same class -> the name the rules use
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "requests.sessions.Session": "requests.Session",
        "requests.api.get": "requests.get",
        "requests.api.post": "requests.post",
        "requests.api.request": "requests.request",
        "concurrent.futures.thread.ThreadPoolExecutor": "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.process.ProcessPoolExecutor": "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures._base.Executor": "concurrent.futures.Executor",
        "concurrent.futures._base.Future": "concurrent.futures.Future",
        "concurrent.futures._base.wait": "concurrent.futures.wait",
        "concurrent.futures._base.as_completed": "concurrent.futures.as_completed",
        "httpx._client.Client": "httpx.Client",
        "redis.client.Redis": "redis.Redis",
        "redis.client.StrictRedis": "redis.StrictRedis",
        "redis.StrictRedis": "redis.Redis",
        "http.client.HTTPSConnection": "http.client.HTTPConnection",
        "pathlib.PosixPath": _PATH,
        "pathlib.WindowsPath": _PATH,
        "threading._RLock": "threading.RLock",
        "_thread.allocate_lock": "threading.Lock",
        "_thread.LockType": "threading.Lock",
        "multiprocessing.queues.Queue": "multiprocessing.Queue",
        "urllib3.poolmanager.PoolManager": "urllib3.PoolManager",
        "urllib3.connectionpool.HTTPConnectionPool": "urllib3.HTTPConnectionPool",
        "urllib3.HTTPSConnectionPool": "urllib3.HTTPConnectionPool",
    }
)

# keyword argument -> the literal value that makes a blocking call return at once
# (`lock.acquire(blocking=False)`, `q.get(block=False)`, `ex.shutdown(wait=False)`,
# `t.join(timeout=0)`); a literal `False` as a positional argument counts too
NONBLOCKING_KEYWORDS: Mapping[str, object] = MappingProxyType(
    {"blocking": False, "block": False, "wait": False, "timeout": 0}
)

# exceptions whose handler catches the cancellation of a task (HD302); a bare `except:` too
CANCELLATION: frozenset[str] = frozenset(
    {
        "BaseException",
        "asyncio.CancelledError",
        "asyncio.exceptions.CancelledError",
        "concurrent.futures.CancelledError",
        "trio.Cancelled",
    }
)

# a flag among the arguments that makes the call return at once: os.waitpid(pid, os.WNOHANG)
NONBLOCKING_FLAGS: frozenset[str] = frozenset({"WNOHANG", "LOCK_NB", "O_NONBLOCK"})

# method -> argument value (None: any) after which the same object's blocking calls in the
# code around return at once: `sock.setblocking(False)`, `sock.settimeout(0)`; a future
# given a done-callback is waited for through that callback, not by `.result()`
NONBLOCKING_SETUP: Mapping[str, object] = MappingProxyType(
    {"setblocking": False, "settimeout": 0, "add_done_callback": None}
)
