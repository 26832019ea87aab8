"""What one file says, as far as the scan cares: the per-file facts that are cached.

A file's facts do not depend on any other file: which functions it defines,
what blocks directly in each (`Event`), which calls may reach another project
function (`Call`), which generators it streams (`Sink`), its classes, imports
and suppression comments. The cheap cross-module part (`graph`) joins them on
every run, so the cache stays correct when only another file changed.

Every fact converts to plain JSON arrays (`to_json` / `from_json`) for the
cache: compact, and safe to load from a file someone else wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Await",
    "Call",
    "ClassInfo",
    "Event",
    "FileFacts",
    "FileProblem",
    "FunctionFacts",
    "Held",
    "Leak",
    "Lock",
    "Phase",
    "Sink",
    "deferred_facts",
    "facts_from_json",
    "facts_to_json",
]


@dataclass(frozen=True)
class Event:
    """Something that blocks (or misbehaves) at one place of one function."""

    code: str
    line: int  # 1-based
    col: int  # 0-based, in characters
    name: str  # what blocks, qualified when known: "requests.get", ".recv"
    text: str  # as written: "requests.get", "with ThreadPoolExecutor(max_workers=2) as ex"
    kind: str  # "call" | "method" (by name alone) | "with" | "except" | "stream"


@dataclass(frozen=True)
class Call:
    """A call that may reach a function of the project, or a typed module-level object."""

    target: str  # dotted, resolved through imports: "pkg.feeds.load_feed"
    line: int
    col: int
    text: str  # the callee as written: "load_feed", "self._refresh"
    argument: bool = False  # the call is an argument of another call: f(g())
    nonblocking: bool = False  # has blocking=False / wait=False / timeout=0 / a literal False
    # no call: the iteration of what `target` returned (`for x in gen()`, `list(gen())`,
    # `g = gen()` ... `next(g)`, `with cm()`), where the iteration is (the `for`, `list(`):
    # a sync generator's body runs there, not where it is called
    iterated: bool = False


@dataclass(frozen=True)
class Sink:
    """A generator handed to a streaming response: `StreamingResponse(gen(...))`."""

    generator: str  # dotted target of the generator function
    sink: str  # "starlette.responses.StreamingResponse"
    line: int
    col: int


@dataclass(frozen=True)
class Lock:
    """An `async with` of a lock-like object (HD601): which lock, where, what is held there."""

    key: str  # "pkg.mod.lock_a", "pkg.mod.Store._lock"; an import to resolve when `kind` is ""
    kind: str  # the lock's type ("asyncio.Lock"); "" when `key` names an import
    line: int
    col: int
    text: str  # as written: "self._lock"
    held: tuple[int, ...] = ()  # indices in the function's `locks` of those held here
    instance: bool = False  # `self.x` set in a method: one lock per object, reached via `self`
    conditional: bool = False  # under an `if`, a loop body, an `except`: not taken every time


@dataclass(frozen=True)
class Await:
    """An awaited call (or `async for` / `async with` on a call) that may reach a coroutine."""

    target: str  # dotted, resolved through imports, like `Call.target`
    line: int
    col: int
    text: str
    held: tuple[int, ...] = ()  # indices in the function's `locks` of those held here
    on_self: bool = False  # `await self.method()`: the callee's `self` is the caller's
    conditional: bool = False


@dataclass(frozen=True)
class Leak:
    """A pooled connection opened here and not given back on every path (HD602 candidate)."""

    kind: str  # "httpx" | "aiohttp" | "session" | "connection"
    line: int
    col: int
    text: str  # the statement as written (shortened)
    name: str  # the variable it is bound to ("" when dropped)
    why: str  # "never" (nothing closes it) | "late" (closed, not in a `finally`) | "dropped"
    confirm: str = ""  # a dotted module-level object whose type another file must confirm
    expect: str = ""  # the type `confirm` must have


@dataclass(frozen=True)
class Held:
    """A `threading` lock taken in a function (HD206): how long it is held there.

    `with lock:` holds it for the lines `start`..`end` of its body; `lock.acquire()`
    until a `release()` the scan does not follow (`start` 0: unknown, taken as long).
    """

    key: str  # like `Lock.key`: "pkg.mod._lock", "pkg.mod.Store._lock"; an import when kind ""
    kind: str  # the lock's type ("threading.Lock"); "" when `key` names an import
    line: int
    col: int
    text: str  # as written: "self._lock"
    start: int = 0  # the body's lines; 0 for an `acquire()`
    end: int = 0
    long: str = ""  # what the body itself does that takes long (`await`, a loop of calls); ""


@dataclass(frozen=True)
class Phase:
    """Code that runs once, before the server takes requests or after it stopped (startup.py).

    `role` "lifespan", "startup" or "shutdown" with `line` 0: the callable `target`
    (dotted, resolved across files) is registered as a lifespan (split at its
    `yield`) or a startup/shutdown handler (the whole function). "yield": `target`'s
    first `yield` is at `line`; `exits` are the `with` lines around it, which exit at
    shutdown. "serve": `target` serves from `line` (`await server.serve()`): before it
    is startup, after it shutdown. "startup"/"shutdown" with `line` > 0: the lines
    `line`..`end` of `target` (a `"lifespan.startup"` branch).
    """

    target: str  # dotted: "pkg.app.lifespan"
    role: str
    line: int = 0
    end: int = 0
    exits: tuple[int, ...] = ()


@dataclass(frozen=True)
class FunctionFacts:
    """One function (or method, or nested function) of the file."""

    qualname: str  # as Python's __qualname__: "news_stream.<locals>.gen", "Feed.load"
    line: int
    col: int
    is_async: bool
    is_generator: bool
    events: tuple[Event, ...] = ()
    calls: tuple[Call, ...] = ()
    stream_loop: Event | None = None  # HD301 candidate: a yielding loop with no disconnect check
    locks: tuple[Lock, ...] = ()  # HD601: the locks it takes with `async with`, in source order
    awaits: tuple[Await, ...] = ()  # HD601: the coroutines it awaits
    leaks: tuple[Leak, ...] = ()  # HD602: pooled connections it does not give back
    held: tuple[Held, ...] = ()  # HD206: the threading locks it takes, and for how long


@dataclass(frozen=True)
class ClassInfo:
    qualname: str
    bases: tuple[str, ...]  # dotted, as resolved in the file


@dataclass(frozen=True)
class FileFacts:
    """Everything the scan keeps about one parsed file."""

    module: str  # "api.routes.stream"
    functions: tuple[FunctionFacts, ...]  # those that block, call, or stream
    quiet: tuple[str, ...] = ()  # qualnames of the other functions: they resolve, do nothing
    classes: tuple[ClassInfo, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # module-level name -> dotted (imports, re-exports)
    instances: tuple[tuple[str, str], ...] = ()  # module-level name -> type of the object
    sinks: tuple[Sink, ...] = ()
    suppressions: tuple[tuple[int, tuple[str, ...]], ...] = ()  # line -> codes; () = all
    lines: int = 0
    # module-level names ("lock", "Store.lock" in a class body) bound once, to a constructor:
    # locks (HD601), session factories and engines (HD602) -> the type
    objects: tuple[tuple[str, str], ...] = ()
    phases: tuple[Phase, ...] = ()  # startup and shutdown code (startup.py)
    # functions whose value has an evident type: (qualname, how, type); how is "call" (what a
    # call of a sync function returns), "await" (an async def's), "yield" / "ayield" (what a
    # sync / async generator yields: a FastAPI dependency's value)
    returns: tuple[tuple[str, str, str], ...] = ()
    # parsed (it has no syntax error) but not analysed yet: nothing in it names async code,
    # so only a lookup from code that is analysed can make it matter (`engine`). Until
    # then it has `classes`, `aliases`, `instances` and `defs` (`visit.file_index`)
    deferred: bool = False
    defs: tuple[str, ...] = ()  # deferred: the qualnames of its functions (nested ones aside)


def deferred_facts(
    module: str,
    lines: int,
    *,
    defs: tuple[str, ...] = (),
    classes: tuple[ClassInfo, ...] = (),
    aliases: tuple[tuple[str, str], ...] = (),
    instances: tuple[tuple[str, str], ...] = (),
) -> FileFacts:
    """The facts of a file parsed but left unanalysed until something looks into it."""
    return FileFacts(
        module=module,
        functions=(),
        classes=classes,
        aliases=aliases,
        instances=instances,
        lines=lines,
        deferred=True,
        defs=defs,
    )


@dataclass(frozen=True)
class FileProblem:
    """A file (or path) that could not be scanned, or was skipped on purpose."""

    path: str
    message: str  # one sentence
    line: int | None = None
    col: int | None = None
    kind: str = "error"  # "error": could not scan; "skipped": left out on purpose (a note)


def _event(e: Event) -> list[Any]:
    return [e.code, e.line, e.col, e.name, e.text, e.kind]


def _event_back(v: list[Any]) -> Event:
    return Event(str(v[0]), int(v[1]), int(v[2]), str(v[3]), str(v[4]), str(v[5]))


def _flags(*bits: bool) -> int:
    return sum(int(b) << i for i, b in enumerate(bits))


def _function(f: FunctionFacts) -> list[Any]:
    return [
        f.qualname,
        f.line,
        f.col,
        int(f.is_async) | (int(f.is_generator) << 1),
        [_event(e) for e in f.events],
        [
            [
                c.target,
                c.line,
                c.col,
                c.text,
                _flags(c.argument, c.nonblocking, c.iterated),
            ]
            for c in f.calls
        ],
        _event(f.stream_loop) if f.stream_loop else None,
        [
            [k.key, k.kind, k.line, k.col, k.text, list(k.held), _flags(k.instance, k.conditional)]
            for k in f.locks
        ],
        [
            [a.target, a.line, a.col, a.text, list(a.held), _flags(a.on_self, a.conditional)]
            for a in f.awaits
        ],
        [[k.kind, k.line, k.col, k.text, k.name, k.why, k.confirm, k.expect] for k in f.leaks],
        [[h.key, h.kind, h.line, h.col, h.text, h.start, h.end, h.long] for h in f.held],
    ]


def _function_back(v: list[Any]) -> FunctionFacts:
    flags = int(v[3])
    return FunctionFacts(
        qualname=str(v[0]),
        line=int(v[1]),
        col=int(v[2]),
        is_async=bool(flags & 1),
        is_generator=bool(flags & 2),
        events=tuple(_event_back(e) for e in v[4]),
        calls=tuple(
            Call(
                str(c[0]),
                int(c[1]),
                int(c[2]),
                str(c[3]),
                bool(c[4] & 1),
                bool(c[4] & 2),
                bool(c[4] & 4),
            )
            for c in v[5]
        ),
        stream_loop=_event_back(v[6]) if v[6] else None,
        locks=tuple(
            Lock(
                str(k[0]),
                str(k[1]),
                int(k[2]),
                int(k[3]),
                str(k[4]),
                tuple(int(h) for h in k[5]),
                bool(k[6] & 1),
                bool(k[6] & 2),
            )
            for k in v[7]
        ),
        awaits=tuple(
            Await(
                str(a[0]),
                int(a[1]),
                int(a[2]),
                str(a[3]),
                tuple(int(h) for h in a[4]),
                bool(a[5] & 1),
                bool(a[5] & 2),
            )
            for a in v[8]
        ),
        leaks=tuple(
            Leak(
                str(k[0]),
                int(k[1]),
                int(k[2]),
                str(k[3]),
                str(k[4]),
                str(k[5]),
                str(k[6]),
                str(k[7]),
            )
            for k in v[9]
        ),
        held=tuple(
            Held(
                str(h[0]),
                str(h[1]),
                int(h[2]),
                int(h[3]),
                str(h[4]),
                int(h[5]),
                int(h[6]),
                str(h[7]),
            )
            for h in v[10]
        ),
    )


def facts_to_json(facts: FileFacts | FileProblem) -> list[Any]:
    """Plain JSON arrays for the cache."""
    if isinstance(facts, FileProblem):
        return ["problem", facts.path, facts.message, facts.line, facts.col, facts.kind]
    if facts.deferred:
        return [
            "deferred",
            facts.module,
            facts.lines,
            list(facts.defs),
            [[c.qualname, list(c.bases)] for c in facts.classes],
            [list(a) for a in facts.aliases],
            [list(i) for i in facts.instances],
        ]
    return [
        "facts",
        facts.module,
        [_function(f) for f in facts.functions],
        list(facts.quiet),
        [[c.qualname, list(c.bases)] for c in facts.classes],
        [list(a) for a in facts.aliases],
        [list(i) for i in facts.instances],
        [[s.generator, s.sink, s.line, s.col] for s in facts.sinks],
        [[line, list(codes)] for line, codes in facts.suppressions],
        facts.lines,
        [list(o) for o in facts.objects],
        [[p.target, p.role, p.line, p.end, list(p.exits)] for p in facts.phases],
        [list(r) for r in facts.returns],
    ]


def facts_from_json(value: list[Any]) -> FileFacts | FileProblem:
    """The inverse of `facts_to_json`; raises ValueError/TypeError/IndexError on bad data."""
    if value[0] == "problem":
        _, path, message, line, col, kind = value
        return FileProblem(str(path), str(message), line, col, str(kind))
    if value[0] == "deferred":
        _, module, lines, defs, classes, aliases, instances = value
        return deferred_facts(
            str(module),
            int(lines),
            defs=tuple(str(d) for d in defs),
            classes=_classes_back(classes),
            aliases=tuple((str(a), str(b)) for a, b in aliases),
            instances=tuple((str(a), str(b)) for a, b in instances),
        )
    if value[0] != "facts":
        raise ValueError("not a facts record")
    (
        _,
        module,
        functions,
        quiet,
        classes,
        aliases,
        instances,
        sinks,
        suppressions,
        lines,
        objects,
        phases,
        returns,
    ) = value
    return FileFacts(
        module=str(module),
        functions=tuple(_function_back(f) for f in functions),
        quiet=tuple(str(q) for q in quiet),
        classes=_classes_back(classes),
        aliases=tuple((str(a), str(b)) for a, b in aliases),
        instances=tuple((str(a), str(b)) for a, b in instances),
        sinks=tuple(Sink(str(g), str(s), int(ln), int(c)) for g, s, ln, c in sinks),
        suppressions=tuple((int(ln), tuple(str(c) for c in codes)) for ln, codes in suppressions),
        lines=int(lines),
        objects=tuple((str(a), str(b)) for a, b in objects),
        phases=tuple(
            Phase(str(t), str(r), int(ln), int(e), tuple(int(x) for x in xs))
            for t, r, ln, e, xs in phases
        ),
        returns=tuple((str(q), str(h), str(t)) for q, h, t in returns),
    )


def _classes_back(value: list[Any]) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(str(q), tuple(str(b) for b in bs)) for q, bs in value)
