"""What a coroutine holds while it waits: locks (HD601) and pooled connections (HD602).

The tables say which constructors make a lock, an HTTP client, a database session
factory or engine, under every name a project spells them. `release` decides, for
one function, whether a pooled resource bound to a name is given back on every
path: entered with `async with`, closed in a `finally`, handed on (returned,
passed to a call, stored, captured by a nested function), or not.

Both checks report only what the code shows for certain; see docs/scan.md.

`threading` locks (HD206) are judged by how long they are held: `ThreadLocks`
decides, for every `with lock:` the scan meets in async code (or in a sync helper
it calls), whether any place in the project holds that lock across something that
takes long. A lock only ever held for a few assignments makes the loop wait
microseconds at worst, and is not reported.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from hangdoctor.scan.facts import Call, FunctionFacts, Held
from hangdoctor.scan.names import SCOPE_NODES, safe_unparse

__all__ = [
    "AIOHTTP",
    "AIOHTTP_METHODS",
    "ASYNC_SELF",
    "ENGINE",
    "HTTPX",
    "LOCK_KINDS",
    "LOCK_TYPES",
    "NON_REENTRANT",
    "SESSION_CLASSES",
    "SESSION_FACTORY",
    "THREAD_LOCKS",
    "LongHold",
    "ThreadLocks",
    "long_body",
    "normal_type",
    "release",
]

# a lock-like type as written (after the scan's aliases) -> the name a finding uses
LOCK_TYPES: Mapping[str, str] = MappingProxyType(
    {
        **{f"asyncio.{n}": f"asyncio.{n}" for n in ("Lock", "Semaphore", "BoundedSemaphore")},
        **{f"asyncio.locks.{n}": f"asyncio.{n}" for n in ("Lock", "Semaphore", "BoundedSemaphore")},
        "asyncio.Condition": "asyncio.Condition",
        "asyncio.locks.Condition": "asyncio.Condition",
        **{f"anyio.{n}": f"anyio.{n}" for n in ("Lock", "Semaphore", "Condition")},
        **{
            f"anyio._core._synchronization.{n}": f"anyio.{n}"
            for n in ("Lock", "Semaphore", "Condition")
        },
        **{f"trio.{n}": f"trio.{n}" for n in ("Lock", "StrictFIFOLock", "Semaphore")},
    }
)

LOCK_KINDS = frozenset(LOCK_TYPES.values())

# acquiring one of these again in the task that holds it waits for ever (anyio and trio
# raise instead; a semaphore may have a token to spare)
NON_REENTRANT = frozenset({"asyncio.Lock"})

# `threading` primitives that `with x:` acquires (HD206), as the scan names their type
THREAD_LOCKS = frozenset(
    {
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
        "threading.BoundedSemaphore",
        "threading.Condition",
    }
)

HTTPX = "httpx.AsyncClient"
AIOHTTP = "aiohttp.ClientSession"
SESSION = "sqlalchemy.ext.asyncio.AsyncSession"
SESSION_FACTORY = "sqlalchemy.ext.asyncio.async_sessionmaker"
ENGINE = "sqlalchemy.ext.asyncio.AsyncEngine"

# an HTTP client type as written -> its name
CLIENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        HTTPX: HTTPX,
        "httpx._client.AsyncClient": HTTPX,
        AIOHTTP: AIOHTTP,
        "aiohttp.client.ClientSession": AIOHTTP,
    }
)
SESSION_CLASSES = frozenset({SESSION, "sqlalchemy.ext.asyncio.session.AsyncSession"})
SESSION_FACTORIES = frozenset(
    {SESSION_FACTORY, "sqlalchemy.ext.asyncio.session.async_sessionmaker"}
)
ENGINE_FACTORIES = frozenset(
    {
        "sqlalchemy.ext.asyncio.create_async_engine",
        "sqlalchemy.ext.asyncio.engine.create_async_engine",
    }
)
ENGINE_TYPES = frozenset({ENGINE, "sqlalchemy.ext.asyncio.engine.AsyncEngine"})


def normal_type(name: str, origin: str) -> str:
    """The name the checks use for a type as written (`name`), or for what a call to the
    factory `origin` returns (`async_sessionmaker(...)`, `create_async_engine(...)`)."""
    if name:
        if name in LOCK_TYPES:
            return LOCK_TYPES[name]
        if name in CLIENT_TYPES:
            return CLIENT_TYPES[name]
        if name in ENGINE_TYPES:
            return ENGINE
        if name in SESSION_FACTORIES:  # a factory confirmed by another file's objects
            return SESSION_FACTORY
        return name
    if origin in SESSION_FACTORIES:
        return SESSION_FACTORY
    if origin in ENGINE_FACTORIES:
        return ENGINE
    return ""


# `async with X(...) as v`: `v` is the X itself (its `__aenter__` returns self)
ASYNC_SELF = frozenset(CLIENT_TYPES)

# aiohttp.ClientSession methods that send a request and return the response
AIOHTTP_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "_request"}
)

# kind -> methods that give the connection back
_CLOSERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "httpx": frozenset({"aclose"}),
        "aiohttp": frozenset({"release", "close"}),
        "session": frozenset({"close", "invalidate", "reset"}),
        "connection": frozenset({"close", "invalidate"}),
    }
)
# methods that give it back when nothing goes wrong (httpx closes a stream read to its end)
_CLOSES_ON_SUCCESS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"httpx": frozenset({"aread", "aiter_bytes", "aiter_raw", "aiter_text", "aiter_lines"})}
)
# aiohttp response attributes that read neither the body nor the connection
_AIOHTTP_METADATA = frozenset(
    {
        "status",
        "reason",
        "ok",
        "headers",
        "raw_headers",
        "url",
        "real_url",
        "method",
        "host",
        "version",
        "content_type",
        "charset",
        "content_length",
        "cookies",
        "history",
        "links",
        "request_info",
        "raise_for_status",
        "get_encoding",
    }
)
# a parent through which a use of the name hands nothing on
_HARMLESS = (
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.If,
    ast.While,
    ast.IfExp,
    ast.Assert,
    ast.FormattedValue,
    ast.Expr,
    ast.Yield,
)
_TRY: tuple[type[ast.AST], ...] = tuple(
    t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None
)


def _is_none(node: ast.AST | None) -> bool:
    """`None`, or no value at all (`r: Response` declares, does not bind)."""
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def _catches_all(handler: ast.ExceptHandler) -> bool:
    """A bare `except:`, `except BaseException`, or `except CancelledError` among others."""
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    for n in names:
        last = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else ""
        if last in ("BaseException", "CancelledError"):
            return True
    return False


def release(fn: ast.AST, name: str, kind: str) -> str:
    """How the function gives back the resource bound to `name`.

    "ok": it does on every path, or hands it on (returned, passed to a call,
    stored, entered with `async with`, captured by a nested function, a close
    method given as a callback), or closes it in a `finally` or in a handler of
    every exception (`except BaseException:`); "late": it closes it elsewhere;
    "never": nothing gives it back; "skip": the name is bound more than once.
    For an aiohttp response, reading or releasing it anywhere counts: aiohttp
    gives the connection back when the body has been read.
    """
    closers = _CLOSERS[kind]
    on_success = _CLOSES_ON_SUCCESS.get(kind, frozenset())
    stores = 0
    closed = late = used = False
    body: list[ast.stmt] = getattr(fn, "body", [])
    stack: list[tuple[ast.AST, ast.AST, ast.AST, bool]] = [(s, fn, fn, False) for s in body]
    while stack:
        node, parent, grand, final = stack.pop()
        if isinstance(node, SCOPE_NODES):
            if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node)):
                return "ok"  # a nested function (a cleanup callback) sees it
            continue
        if isinstance(node, ast.Name):
            if node.id != name:
                continue
            if isinstance(node.ctx, ast.Store):
                if not (isinstance(parent, (ast.Assign, ast.AnnAssign)) and _is_none(parent.value)):
                    stores += 1
                continue
            if isinstance(node.ctx, ast.Del) or not isinstance(parent, _HARMLESS):
                return "ok"  # handed on: returned, an argument, stored, `async with r`
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id != name:
                continue
            called = isinstance(parent, ast.Call) and parent.func is node
            if node.attr in closers:
                if not called:
                    return "ok"  # a callback: BackgroundTask(r.aclose), push_async_callback
                if final:
                    closed = True
                else:
                    late = True
            elif node.attr in on_success and called:
                late = True
            elif kind == "aiohttp" and node.attr not in _AIOHTTP_METADATA:
                used = True  # the body is read (`.text()`, `.content`): aiohttp releases it
            elif kind == "session" and called and isinstance(grand, ast.withitem):
                return "ok"  # `async with session.begin():` gives the connection back
            continue
        if isinstance(node, _TRY):
            fields = vars(node)
            for part in ("body", "orelse"):
                stack.extend((s, node, parent, final) for s in fields[part])
            for handler in fields["handlers"]:
                # `except BaseException: await r.aclose(); raise` closes on every failure
                stack.append((handler, node, parent, final or _catches_all(handler)))
            stack.extend((s, node, parent, True) for s in fields["finalbody"])
            continue
        stack.extend((c, node, parent, final) for c in ast.iter_child_nodes(node))
    if stores > 1:
        return "skip"
    if kind == "aiohttp":
        return "ok" if closed or late or used else "never"
    if closed:
        return "ok"
    return "late" if late else "never"


# ---- HD206: how long a `threading` lock is held ------------------------------------------

_SUSPENDS = (ast.Await, ast.Yield, ast.YieldFrom, ast.AsyncFor, ast.AsyncWith)
_LOOPS: tuple[type[ast.AST], ...] = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes below `node` that run with it: not nested functions, lambdas or classes."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        cur = stack.pop()
        if isinstance(cur, (*SCOPE_NODES, ast.Lambda)):
            continue
        out.append(cur)
        stack.extend(ast.iter_child_nodes(cur))
    return out


def long_body(body: Sequence[ast.stmt]) -> str:
    """What in a `with lock:` body keeps the lock long, by the body alone, or "".

    An `await` or a `yield` gives up the thread with the lock held, for as long as
    the awaited thing takes; a loop that calls something repeats work the scan cannot
    size. Blocking calls in the body are found by the graph (from the events).
    """
    nodes = [n for stmt in body for n in (stmt, *_own_nodes(stmt))]
    for n in nodes:
        if isinstance(n, _SUSPENDS):
            suspends = isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith))
            return "an `await`" if suspends else "a `yield`"
    for n in nodes:
        if isinstance(n, _LOOPS):
            call = next(
                (c for c in _own_nodes(n) if isinstance(c, ast.Call) and not _cheap(c)), None
            )
            if call is not None:
                return f"a loop that calls `{safe_unparse(call.func, 40)}()`"
    return ""


# Builtins and container methods that do a bounded step in memory: a loop of them over
# a registry (Django's signal receivers) is a microsecond section, not a wait.
_CHEAP_FUNCTIONS = frozenset(
    {
        "range", "len", "enumerate", "zip", "reversed", "sorted", "isinstance", "id",
        "hash", "min", "max", "abs", "bool", "int", "str", "tuple", "list", "dict", "set",
        "frozenset", "getattr", "hasattr", "type", "iter", "next", "callable", "repr",
    }
)  # fmt: skip
_CHEAP_METHODS = frozenset(
    {
        "append", "extend", "insert", "pop", "popleft", "appendleft", "remove", "discard",
        "add", "clear", "copy", "get", "setdefault", "update", "items", "keys", "values",
        "index", "count",
    }
)  # fmt: skip


def _cheap(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in _CHEAP_FUNCTIONS
    if not isinstance(func, ast.Attribute) or func.attr not in _CHEAP_METHODS:
        return False
    # `self.add(item)` is the project's own method, of unknown cost; `self.items.add(x)`
    # and `seen.add(x)` are a container's
    receiver = func.value
    return not (isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"))


FuncKey = tuple[int, str]  # (file index, qualname), as in `graph`
_ACQUIRE = "from an `acquire()` to a `release()` the scan does not follow"


@dataclass(frozen=True)
class LongHold:
    """A place that holds a `threading` lock long, and what it does meanwhile."""

    func: FuncKey
    held: Held
    reason: str  # "across `requests.get`", "across an `await`"


class ThreadLocks:
    """Which `with lock:` sites are worth reporting (HD206), across the project.

    `own` lists, per function, its blocking calls as (line, col, text), `with lock:`
    acquisitions excluded; `edges` its calls into project sync functions;
    `lock_key` the stable key of a lock taken in a file (None when unknown).
    """

    def __init__(
        self,
        funcs: Mapping[FuncKey, FunctionFacts],
        own: Mapping[FuncKey, Sequence[tuple[int, int, str]]],
        edges: Mapping[FuncKey, Sequence[tuple[Call, FuncKey]]],
        lock_key: Callable[[Held, int], str | None],
    ) -> None:
        self._sites: dict[tuple[int, str, int, int], list[tuple[Held, str | None]]] = {}
        self.long: dict[str, list[LongHold]] = {}  # lock key -> the places that hold it long
        if not any(fn.held for fn in funcs.values()):
            return
        blocks = _blocking(own, edges)
        for func in sorted(funcs):
            for held in funcs[func].held:
                key = lock_key(held, func[0])
                site = (func[0], func[1], held.line, held.col)
                self._sites.setdefault(site, []).append((held, key))
                if key is None:
                    continue
                reason = _reason(held, own.get(func, ()), edges.get(func, ()), blocks)
                if reason:
                    self.long.setdefault(key, []).append(LongHold(func, held, reason))

    def verdict(
        self, func: FuncKey, line: int, col: int, text: str | None = None
    ) -> LongHold | str | None:
        """For the HD206 `with` at this place (`text`: its header, when there are several
        items): the place that holds its lock long; "short" when every place holds it
        briefly (not worth a finding); None when the scan does not know the lock."""
        for held, key in self._sites.get((func[0], func[1], line, col), ()):
            if held.start == 0:
                continue
            header = f"with {held.text}"
            if text is not None and text != header and not text.startswith(f"{header} as "):
                continue
            if key is None:
                return None
            places = self.long.get(key)
            if not places:
                return "short"
            # the clearest place to name: this very block, then this function, then any
            return min(places, key=lambda p: (p.held is not held, p.func != func))
        return None


def _blocking(
    own: Mapping[FuncKey, Sequence[tuple[int, int, str]]],
    edges: Mapping[FuncKey, Sequence[tuple[Call, FuncKey]]],
) -> dict[FuncKey, str]:
    """Sync functions that block, directly or through the sync functions they call ->
    the first blocking call (as written) at the end."""
    callers: dict[FuncKey, list[FuncKey]] = {}
    for caller, calls in edges.items():
        for _, callee in calls:
            callers.setdefault(callee, []).append(caller)
    out = {f: events[0][2] for f, events in own.items() if events}
    queue = list(out)
    while queue:
        callee = queue.pop()
        for caller in callers.get(callee, ()):
            if caller not in out:
                out[caller] = out[callee]
                queue.append(caller)
    return out


def _reason(
    held: Held,
    own: Sequence[tuple[int, int, str]],
    calls: Sequence[tuple[Call, FuncKey]],
    blocks: Mapping[FuncKey, str],
) -> str:
    """Why this place holds the lock long ("" when it holds it briefly)."""
    if held.start == 0:
        return _ACQUIRE
    if held.long:
        return f"across {held.long}"
    for line, _, text in own:
        if held.start <= line <= held.end:
            return f"across `{text}`"
    for call, callee in calls:
        if held.start <= call.line <= held.end and callee in blocks:
            return f"across `{call.text}()`, which blocks (`{blocks[callee]}`)"
    return ""
