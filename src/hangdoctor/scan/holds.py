"""What a coroutine holds while it waits: locks (HD601) and pooled connections (HD602).

The tables say which constructors make a lock, an HTTP client, a database session
factory or engine, under every name a project spells them. `release` decides, for
one function, whether a pooled resource bound to a name is given back on every
path: entered with `async with`, closed in a `finally`, handed on (returned,
passed to a call, stored, captured by a nested function), or not.

Both checks report only what the code shows for certain; see docs/scan.md.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from types import MappingProxyType

from hangdoctor.scan.names import SCOPE_NODES

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
