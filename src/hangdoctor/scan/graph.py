"""Across functions and modules: which sync helpers block, and which async code calls them.

The per-file facts name every call by a dotted target (`pkg.feeds.load_feed`,
`pkg.svc.Feed.load`, `pkg.mod.outer.<locals>.inner`). Here the targets are
resolved against the project's modules (following re-exports and base
classes), and a breadth-first search backwards from every direct blocking
call finds, for each sync function and each code, the shortest chain of sync
calls down to a blocking call. Recursion is harmless: a function is visited
once per code. Async functions are where findings are reported: at a blocking
call in their own code, or at a call to a sync helper that blocks, with the
chain (`news_stream -> load_feed -> fetch -> requests.get`).

This part is cheap and runs on every scan, cached facts or not, so a change in
one file is seen in every chain that goes through it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from hangdoctor.catalog import get_rule
from hangdoctor.scan.facts import (
    Await,
    Call,
    Event,
    FileFacts,
    FunctionFacts,
    Held,
    Leak,
    Lock,
)
from hangdoctor.scan.holds import (
    LOCK_KINDS,
    NON_REENTRANT,
    THREAD_LOCKS,
    LongHold,
    ThreadLocks,
    normal_type,
)
from hangdoctor.scan.knowledge import PROPAGATING, Knowledge, canonical
from hangdoctor.scan.startup import Phases

__all__ = ["Demand", "RawFinding", "Step", "find"]

_MAX_DEPTH = 12  # re-export and base-class hops while resolving one name

FuncKey = tuple[int, str]  # (file index, qualname)
_Found = tuple[str, "FuncKey | str"] | None  # what a name resolves to (`_Resolver.resolve`)
_K = TypeVar("_K")


@dataclass(frozen=True)
class Step:
    """One hop of a chain: a call (or the blocking call at the end) in a function."""

    file_index: int
    function: str
    line: int
    col: int
    text: str  # the callee as written; at the end, what blocks ("requests.get")


@dataclass(frozen=True)
class RawFinding:
    """A finding before display paths, filters and source lines are applied."""

    file_index: int
    function: str
    code: str
    line: int
    col: int
    message: str
    chain: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    phase: str = ""  # "startup" / "shutdown": code that runs once, not on requests (startup.py)


@dataclass(frozen=True)
class _Own:
    """A blocking call in a function's own code, with its code."""

    code: str
    line: int
    col: int
    name: str
    text: str
    kind: str


@dataclass
class Demand:
    """What a search over partly deferred facts (`FileFacts.deferred`) still needs analysed.

    `files`: the deferred files a lookup went into (a call, a base class, an imported
    object). `names`: names whose every mention in the project counts, wherever it is: a
    thread lock whose holders decide HD206, a coroutine given a phase that a file
    handing it on would take back. Empty when the findings are those of a whole analysis.
    """

    files: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


class _Resolver:
    def __init__(self, files: Sequence[FileFacts | None], kb: Knowledge) -> None:
        self.files = files
        self.kb = kb
        self.deferred: set[int] = set()
        self.defs: dict[int, frozenset[str]] = {}  # deferred file -> its functions
        # deferred files the lookups went into, since whoever reads them last set it
        self.touched: set[int] = set()
        seen: dict[str, list[int]] = {}
        self.funcs: list[dict[str, FunctionFacts]] = []
        self.quiet: list[frozenset[str]] = []
        self.classes: list[dict[str, tuple[str, ...]]] = []
        self.aliases: list[dict[str, str]] = []
        self.instances: list[dict[str, str]] = []
        self.objects: list[dict[str, str]] = []
        for i, f in enumerate(files):
            if f is None:
                self.funcs.append({})
                self.quiet.append(frozenset())
                self.classes.append({})
                self.aliases.append({})
                self.instances.append({})
                self.objects.append({})
                continue
            seen.setdefault(f.module, []).append(i)
            if f.deferred:
                self.deferred.add(i)
                self.defs[i] = frozenset(f.defs)
            self.funcs.append({fn.qualname: fn for fn in f.functions})
            self.quiet.append(frozenset(f.quiet))
            self.classes.append({c.qualname: c.bases for c in f.classes})
            self.aliases.append(dict(f.aliases))
            self.instances.append(dict(f.instances))
            self.objects.append(dict(f.objects))
        # a module name two files share (two scripts called app.py) resolves to neither
        self.modules = {m: ix[0] for m, ix in seen.items() if len(ix) == 1}
        self.roots = {m.split(".", 1)[0] for m in seen}
        # answers, with the deferred files the lookup went into (to be `touched` again when
        # the answer is reused)
        self._memo: dict[tuple[str, int], tuple[_Found, frozenset[int]]] = {}
        self._deep: dict[tuple[str, int, int], tuple[_Found, frozenset[int]]] = {}
        # per file: qualname -> (how, type) of what the function gives (`FileFacts.returns`)
        self.returns = [
            {q: (how, typ) for q, how, typ in f.returns} if f is not None else {} for f in files
        ]

    def resolve(self, target: str, origin: int) -> tuple[str, FuncKey | str] | None:
        """("func", (file, qualname)) or ("ext", qualified library callable), or None."""
        if "(" in target:  # a method of what a project function gives: `pkg.db.pool().result`
            return self._remembered(self._memo, (target, origin), self._typed_call, target, origin)
        if target.split(".", 1)[0] not in self.roots:
            return None  # a library call the catalog does not name
        own = self.files[origin]
        # only a name inside the caller's own module depends on who calls
        key = (target, origin if own is not None and target.startswith(own.module) else -1)
        return self._remembered(self._memo, key, self._resolve, target, origin, 0)

    def _remembered(
        self,
        memo: dict[_K, tuple[_Found, frozenset[int]]],
        key: _K,
        work: Callable[..., _Found],
        *args: object,
    ) -> _Found:
        """`work(*args)`, remembered under `key` with the deferred files it went into."""
        known = memo.get(key)
        if known is not None:
            self.touched |= known[1]
            return known[0]
        outer = self.touched
        self.touched = set()
        try:
            found = work(*args)
        finally:
            inner, self.touched = self.touched, outer
        outer |= inner
        memo[key] = (found, frozenset(inner))
        return found

    def function(self, target: str, origin: int) -> FuncKey | None:
        """The project function `target` names, or None."""
        found = self.resolve(target, origin)
        if found is None or found[0] != "func":
            return None
        key = found[1]
        assert isinstance(key, tuple)
        return key

    def _typed_call(self, target: str, origin: int) -> tuple[str, FuncKey | str] | None:
        """`pkg.db.pool().result`, `Depends(pkg.deps.get_db).query().all`: the method called on
        what a project function returns (or gives a FastAPI route as a dependency), followed
        through the types the functions of every file give (`FileFacts.returns`)."""
        depends = target.startswith("Depends(")
        if depends:
            close = target.find(")")
            head, rest = target[8:close], target[close + 2 :]
        else:
            close = target.find("()")
            head, rest = target[:close], target[close + 3 :]
        *methods, last = rest.split("().")
        found = self.function(head, origin) if head.split(".", 1)[0] in self.roots else None
        typed = self._given(found, depends)
        for method in methods:
            if typed is None:
                return None
            typed = self._method_gives(typed[0], method, typed[1])
        if typed is None or not last:
            return None
        return self._typed(typed[0], last, typed[1], 0)

    def _given(self, func: FuncKey | None, depends: bool = False) -> tuple[str, int] | None:
        """(type, file) of what a call of `func` returns; with `depends`, of what it gives as
        a dependency (returns, yields, or its coroutine returns)."""
        if func is None:
            return None
        entry = self.returns[func[0]].get(func[1])
        if entry is None or not (depends or entry[0] == "call"):
            return None
        typ = entry[1]
        # `SessionLocal()` for an imported `SessionLocal = sessionmaker(...)`: what calling
        # that object returns
        obj = self.resolve_object(typ, func[0])
        if obj is not None:
            called = self.kb.returns(canonical(f"{obj[1]}.__call__"))
            return (called, func[0]) if called else None
        return (typ, func[0])

    def _method_gives(self, typ: str, method: str, index: int) -> tuple[str, int] | None:
        """(type, file) of what the method `method` of the type `typ` returns."""
        found = self._typed(typ, method, index, 0)
        if found is None:
            return None
        if found[0] == "func":
            assert isinstance(found[1], tuple)
            return self._given(found[1])
        assert isinstance(found[1], str)
        returned = self.kb.returns(found[1])
        return (returned, index) if returned else None

    def _resolve(self, target: str, origin: int, depth: int) -> tuple[str, FuncKey | str] | None:
        # Remembered at every depth, not only for `resolve`: a method is looked up through
        # the same base classes (SQLAlchemy's mixins, Django's) again and again. The answer
        # depends on the caller only for a name inside the caller's own module, and on the
        # depth by `_MAX_DEPTH`, so both are in the key.
        own = self.files[origin]
        inside = own is not None and target.startswith(own.module + ".")
        key = (target, origin if inside else -1, depth)
        return self._remembered(self._deep, key, self._resolve_now, target, origin, depth)

    def _resolve_now(
        self, target: str, origin: int, depth: int
    ) -> tuple[str, FuncKey | str] | None:
        if depth > _MAX_DEPTH:
            return None
        own = self.files[origin]
        if own is not None and target.startswith(own.module + "."):
            found = self._in_file(origin, target[len(own.module) + 1 :], depth)
            if found is not None:
                return found
        parts = target.split(".")
        for i in range(len(parts) - 1, 0, -1):
            index = self.modules.get(".".join(parts[:i]))
            if index is not None:
                return self._in_file(index, ".".join(parts[i:]), depth)
        return None

    def _in_file(self, index: int, rest: str, depth: int) -> tuple[str, FuncKey | str] | None:
        if rest in self.funcs[index] or rest in self.quiet[index]:
            return ("func", (index, rest))
        if index in self.deferred and (rest in self.defs[index] or "<locals>" in rest):
            self.touched.add(index)  # a function: its facts are wanted
            return None
        classes = self.classes[index]
        probe = rest
        while probe:
            if probe in classes:
                method = rest[len(probe) + 1 :] or "__init__"
                return self._method(index, probe, method, depth)
            probe = probe.rpartition(".")[0]
        head, _, tail = rest.partition(".")
        alias = self.aliases[index].get(head)
        if alias is not None:  # a re-export: `from .net import fetch as fetch_it`
            return self._resolve(f"{alias}.{tail}" if tail else alias, index, depth + 1)
        typ = self.instances[index].get(head)
        if typ is not None and tail:
            return self._typed(typ, tail, index, depth)
        return None

    def _typed(
        self, typ: str, method: str, index: int, depth: int
    ) -> tuple[str, FuncKey | str] | None:
        """A method of an object whose type is known: a project class or a library one."""
        found = self._resolve(f"{typ}.{method}", index, depth + 1)
        if found is not None:
            return found
        return ("ext", canonical(f"{typ}.{method}"))

    def resolve_object(
        self, target: str, origin: int, typed: bool = True, depth: int = 0
    ) -> tuple[str, str] | None:
        """(stable key, type) of a module-level object (`pkg.locks.lock_a`), through
        re-exports; None when no scanned module defines it. Only objects bound once, to
        a constructor (`FileFacts.objects`), unless `typed`: then any of a known type."""
        if depth > _MAX_DEPTH or target.split(".", 1)[0] not in self.roots:
            return None
        own = self.files[origin]
        if own is not None and target.startswith(own.module + "."):
            found = self._object_in(origin, target[len(own.module) + 1 :], typed, depth)
            if found is not None:
                return found
        parts = target.split(".")
        for i in range(len(parts) - 1, 0, -1):
            index = self.modules.get(".".join(parts[:i]))
            if index is not None:
                return self._object_in(index, ".".join(parts[i:]), typed, depth)
        return None

    def _object_in(self, index: int, rest: str, typed: bool, depth: int) -> tuple[str, str] | None:
        if index in self.deferred:
            self.touched.add(index)
            return None
        typ = self.objects[index].get(rest)
        if typ is None and typed:
            typ = self.instances[index].get(rest)
        if typ:
            return (self.object_key(index, rest), normal_type(typ, ""))
        head, _, tail = rest.partition(".")
        alias = self.aliases[index].get(head)
        if alias is not None:
            following = f"{alias}.{tail}" if tail else alias
            return self.resolve_object(following, index, typed, depth + 1)
        return None

    def object_key(self, index: int, rest: str) -> str:
        """The key of the object `rest` of file `index`; unique even when two files share a
        module name (two scripts called app.py)."""
        own = self.files[index]
        module = own.module if own is not None else ""
        if self.modules.get(module) == index:
            return f"{module}.{rest}"
        return f"{index}:{module}.{rest}"

    def lock_key(self, lock: Lock, index: int) -> tuple[str, str] | None:
        """(stable key, kind) of a lock entered in file `index`; None when not a known lock."""
        own = self.files[index]
        if lock.kind:
            if own is None:
                return None
            return (self.object_key(index, lock.key[len(own.module) + 1 :]), lock.kind)
        found = self.resolve_object(lock.key, index, typed=False)
        if found is None or found[1] not in LOCK_KINDS:
            return None
        return found

    def thread_lock_key(self, held: Held, index: int) -> str | None:
        """The stable key of a `threading` lock taken in file `index`, or None."""
        own = self.files[index]
        if held.kind:
            return None if own is None else self.object_key(index, held.key[len(own.module) + 1 :])
        found = self.resolve_object(held.key, index, typed=True)
        return found[0] if found is not None and found[1] in THREAD_LOCKS else None

    def _method(
        self, index: int, cls: str, method: str, depth: int
    ) -> tuple[str, FuncKey | str] | None:
        if depth > _MAX_DEPTH:
            return None
        key = f"{cls}.{method}"
        if key in self.funcs[index] or key in self.quiet[index]:
            return ("func", (index, key))
        if index in self.deferred and key in self.defs[index]:
            self.touched.add(index)
            return None
        if "." in method:
            return None
        for base in self.classes[index].get(cls, ()):
            found = self._resolve(f"{base}.{method}", index, depth + 1)
            if found is not None:
                return found
            name = canonical(f"{base}.{method}")
            if self.kb.call_code(name) is not None:
                return ("ext", name)  # class Worker(threading.Thread): w.join()
        return None


Suppressed = Callable[[int, int, str], bool]  # (file index, line, code)
Enabled = Callable[[str], bool]


def _own_events(
    key: FuncKey, fn: FunctionFacts, resolver: _Resolver, kb: Knowledge
) -> list[tuple[_Own, Call | None]]:
    out: list[tuple[_Own, Call | None]] = [
        (_Own(e.code, e.line, e.col, e.name, e.text, e.kind), None) for e in fn.events
    ]
    # a method the catalog names (`.recv`) on what another file's function returns is
    # reported by name already: the type, known now, says it better
    by_name = {(e.line, e.col, e.code): i for i, e in enumerate(fn.events) if e.kind == "method"}
    for call in fn.calls:
        if call.nonblocking or call.iterated:
            continue
        found = resolver.resolve(call.target, key[0])
        if found is not None and found[0] == "ext":
            name = found[1]
            assert isinstance(name, str)
            code = kb.call_code(name)
            if code is not None:
                event = (_Own(code, call.line, call.col, name, call.text, "call"), call)
                same = by_name.pop((call.line, call.col, code), None)
                if same is None:
                    out.append(event)
                else:
                    out[same] = event
    return out


def _direct_message(own: _Own) -> str:
    effect = get_rule(own.code).effect
    if own.kind == "with":
        when = " when the block exits" if own.name.endswith(".__exit__") else ""
        return f"`{own.text}:` {effect}{when}"
    if own.kind == "except":
        return f"`{own.text}` {effect}: it does not re-raise"
    if own.kind == "method":
        return f"`{own.text}()` {effect} (a `{own.name}()` call on an object of unknown type)"
    shown = f"`{own.text}()`"
    if own.name != own.text:
        shown += f" ({own.name})"
    return f"{shown} {effect}"


def find(
    files: Sequence[FileFacts | None],
    kb: Knowledge,
    *,
    enabled: Enabled,
    suppressed: Suppressed,
    display: Callable[[int], str],
    demand: Demand | None = None,
) -> list[RawFinding]:
    """Every finding of the project: direct, through sync helpers, and streaming (HD301).

    With deferred files among `files`, `demand` is filled with what must be analysed
    before the findings are final (nothing: they are).
    """
    resolver = _Resolver(files, kb)
    funcs: dict[FuncKey, FunctionFacts] = {}
    for i, f in enumerate(files):
        if f is not None:
            for fn in f.functions:
                funcs[(i, fn.qualname)] = fn
    own: dict[FuncKey, list[tuple[_Own, Call | None]]] = {}
    # the deferred files each function's calls went into: they matter once async code
    # can reach the function (`_needed`)
    touched: dict[FuncKey, set[int]] = {}
    # reverse edges into sync functions: callee -> [(caller, call)]
    callers: dict[FuncKey, list[tuple[FuncKey, Call]]] = {}
    edges: dict[FuncKey, list[tuple[Call, FuncKey]]] = {}  # caller -> [(call, callee)]
    for key, fn in funcs.items():
        resolver.touched = touched[key] = set()
        own[key] = _own_events(key, fn, resolver, kb)
        for call in fn.calls:
            found = resolver.resolve(call.target, key[0])
            if found is None or found[0] != "func":
                continue
            callee = found[1]
            assert isinstance(callee, tuple)
            target = funcs.get(callee)
            if target is None or target.is_async or callee == key:
                continue
            # a generator's body runs where it is iterated, not where it is made or handed
            # on (to StreamingResponse, which iterates it in a thread)
            if target.is_generator != call.iterated:
                continue
            callers.setdefault(callee, []).append((key, call))
            edges.setdefault(key, []).append((call, callee))
    resolver.touched = set()  # from here on, every lookup counts
    for sites in callers.values():
        sites.sort(key=lambda c: (c[0], c[1].line, c[1].col))
    deferring = demand is not None and bool(resolver.deferred)
    # with deferred files: the functions whose facts can make a finding (`Demand`)
    reach = _reach(edges, [k for k, fn in funcs.items() if fn.is_async]) if deferring else set()
    # HD206: a `with lock:` on a lock only ever held briefly is no wait worth a finding
    holds = ThreadLocks(funcs, _blocking_calls(own), edges, resolver.thread_lock_key)
    locks: set[str] = set()  # the locks whose every holder counts
    for key, events in own.items():
        kept: list[tuple[_Own, Call | None]] = []
        for e in events:
            verdict = _hold(holds, key, e[0])
            if key in reach and _lock_wait(e[0]) and not _settled(verdict, key):
                locks.update(_lock_names(e[0].text))
            if verdict != "short":
                kept.append(e)
        events[:] = kept
    if locks:
        holders = [k for k, fn in funcs.items() if any(_holds(h, locks) for h in fn.held)]
        reach |= _reach(edges, holders)
    if demand is not None and deferring:
        demand.names |= locks
        asked = resolver.touched.union(*(touched[key] for key in reach))
        if asked:  # the findings cannot be final: the rest is asked for once these are in
            demand.files |= asked
            return []
    out: list[RawFinding] = []
    for key, fn in funcs.items():
        if not fn.is_async:
            continue
        for event, _ in own[key]:
            if enabled(event.code):
                out.append(
                    RawFinding(
                        key[0],
                        fn.qualname,
                        event.code,
                        event.line,
                        event.col,
                        _direct_message(event),
                    )
                )
    out.extend(_chains(funcs, own, callers, edges, enabled, suppressed, display))
    out.extend(_streams(files, funcs, resolver, enabled, display))
    if enabled("HD601"):
        out.extend(_LockOrder(funcs, resolver, display).findings())
    if enabled("HD602"):
        out.extend(_leaks(funcs, resolver))
    if holds.long:
        out = [_held_long(r, holds, display) for r in out]
    # what Phases looks up never needs a deferred file: a coroutine is in an analysed
    # one, and a sync function has no phase a finding reads
    looked, resolver.touched = resolver.touched, set()
    phases = Phases(files, funcs, resolver.function)
    resolver.touched = looked
    if phases.ranges or phases.whole:
        out = [_phased(r, phases) for r in out]
    if demand is not None and deferring:
        demand.files |= resolver.touched
        demand.names.update(q.rpartition(".")[2] for _, q in phases.inherited)
    return out


def _reach(edges: dict[FuncKey, list[tuple[Call, FuncKey]]], roots: list[FuncKey]) -> set[FuncKey]:
    """`roots` and the sync functions they call, at any depth."""
    seen = set(roots)
    todo = list(roots)
    while todo:
        for _, callee in edges.get(todo.pop(), ()):
            if callee not in seen:
                seen.add(callee)
                todo.append(callee)
    return seen


def _holds(held: Held, locks: set[str]) -> bool:
    return any(name in locks for name in _lock_names(f"with {held.text}"))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _lock_names(header: str) -> list[str]:
    """The last name of each lock a `with` header takes (`with self._lock, a.b as c` ->
    `_lock`, `b`): a file that takes the same lock writes it."""
    out: list[str] = []
    for item in header.removeprefix("with ").split(","):
        found = _IDENTIFIER.findall(item.partition(" as ")[0])
        if found:
            out.append(found[-1])
    return out


def _settled(verdict: LongHold | str | None, key: FuncKey) -> bool:
    """Whether more holders of the lock could not change an HD206 verdict: the lock is
    unknown, or held long in this very function (the place a finding names first)."""
    return verdict is None or (isinstance(verdict, LongHold) and verdict.func == key)


def _phased(r: RawFinding, phases: Phases) -> RawFinding:
    phase = phases.of((r.file_index, r.function), r.line, r.code)
    return replace(r, phase=phase) if phase else r


def _lock_wait(event: _Own) -> bool:
    """A `with lock:` on a `threading` lock: its own type, or an imported one."""
    return event.code == "HD206" and event.text.startswith("with ")


def _hold(holds: ThreadLocks, key: FuncKey, event: _Own) -> LongHold | str | None:
    if not _lock_wait(event):
        return None
    return holds.verdict(key, event.line, event.col, event.text)


def _blocking_calls(
    own: dict[FuncKey, list[tuple[_Own, Call | None]]],
) -> dict[FuncKey, list[tuple[int, int, str]]]:
    """Per function, what blocks in its own code, lock acquisitions aside (they are what
    is being judged)."""
    out: dict[FuncKey, list[tuple[int, int, str]]] = {}
    for key, events in own.items():
        found = [
            (e.line, e.col, e.text if e.kind == "with" else e.name)
            for e, _ in events
            if e.code in PROPAGATING and not _lock_wait(e)
        ]
        if found:
            out[key] = sorted(found)
    return out


def _held_long(r: RawFinding, holds: ThreadLocks, display: Callable[[int], str]) -> RawFinding:
    """An HD206 `with lock:` finding, saying where the lock is held long."""
    if r.code != "HD206":
        return r
    end = r.steps[-1] if r.steps else Step(r.file_index, r.function, r.line, r.col, "")
    found = holds.verdict((end.file_index, end.function), end.line, end.col)
    if not isinstance(found, LongHold):
        return r
    where = f"{display(found.func[0])}:{found.held.line}"
    said = f"; `{found.held.text}` is held {found.reason} ({where})"
    return replace(r, message=r.message + said)


def _chains(
    funcs: dict[FuncKey, FunctionFacts],
    own: dict[FuncKey, list[tuple[_Own, Call | None]]],
    callers: dict[FuncKey, list[tuple[FuncKey, Call]]],
    edges: dict[FuncKey, list[tuple[Call, FuncKey]]],
    enabled: Enabled,
    suppressed: Suppressed,
    display: Callable[[int], str],
) -> list[RawFinding]:
    out: list[RawFinding] = []
    async_keys = sorted(k for k, fn in funcs.items() if fn.is_async and k in edges)
    # per code, the first own blocking call of every sync function that has one
    sources: dict[str, list[tuple[FuncKey, _Own]]] = {}
    for key in sorted(funcs):
        if funcs[key].is_async or not own[key]:
            continue
        first: dict[str, _Own] = {}
        for event, _ in sorted(own[key], key=lambda e: (e[0].line, e[0].col)):
            if event.code not in first and not suppressed(key[0], event.line, event.code):
                first[event.code] = event
        for code, event in first.items():
            sources.setdefault(code, []).append((key, event))
    for code in sorted(PROPAGATING & set(sources)):
        if not enabled(code):
            continue
        # shortest path, per sync function, to a blocking call of this code
        nearest: dict[FuncKey, tuple[int, _Own | None, tuple[Call, FuncKey] | None]] = {}
        queue: deque[FuncKey] = deque()
        for key, event in sources[code]:
            nearest[key] = (0, event, None)
            queue.append(key)
        while queue:
            callee = queue.popleft()
            dist = nearest[callee][0]
            for caller, call in callers.get(callee, ()):
                if suppressed(caller[0], call.line, code):
                    continue
                if funcs[caller].is_async:
                    continue
                if caller not in nearest:
                    nearest[caller] = (dist + 1, None, (call, callee))
                    queue.append(caller)
        if not nearest:
            continue
        for key in async_keys:
            fn = funcs[key]
            for call, callee in edges[key]:
                if callee in nearest:
                    found = _chain_finding(key, fn, call, callee, code, nearest, funcs, display)
                    if call.iterated:
                        message = f"iterating the sync generator {found.message}".replace(
                            "run the call in a thread there (`await asyncio.to_thread(...)`)",
                            "iterate it in a thread there (`await asyncio.to_thread(list, ...)`)",
                        )
                        found = replace(found, message=message)
                    out.append(found)
    return out


def _chain_finding(
    key: FuncKey,
    fn: FunctionFacts,
    call: Call,
    callee: FuncKey,
    code: str,
    nearest: dict[FuncKey, tuple[int, _Own | None, tuple[Call, FuncKey] | None]],
    funcs: dict[FuncKey, FunctionFacts],
    display: Callable[[int], str],
) -> RawFinding:
    names = [fn.qualname]
    steps = [Step(key[0], fn.qualname, call.line, call.col, call.text)]
    cur: FuncKey | None = callee
    end: _Own | None = None
    end_file = callee[0]
    while cur is not None:
        names.append(funcs[cur].qualname)
        _, event, via = nearest[cur]
        if event is not None:
            end, end_file = event, cur[0]
            steps.append(Step(cur[0], funcs[cur].qualname, event.line, event.col, event.name))
            break
        assert via is not None
        hop, nxt = via
        steps.append(Step(cur[0], funcs[cur].qualname, hop.line, hop.col, hop.text))
        cur = nxt
    assert end is not None
    blocking = end.name if end.kind != "with" else end.text
    helper = names[-1]
    names.append(blocking)
    effect = get_rule(code).effect
    # the same two places a live report names: where it blocks and the async caller,
    # so the fix (a thread at the caller, or an async helper) reads the same in both
    message = (
        f"`{call.text}()` {effect}: `{blocking}` blocks in {helper} at "
        f"{display(end_file)}:{end.line}, called from async {fn.qualname} at "
        f"{display(key[0])}:{call.line}: {_remedy_at_caller(code)} "
        f"({' -> '.join(names)})"
    )
    return RawFinding(
        key[0], fn.qualname, code, call.line, call.col, message, tuple(names), tuple(steps)
    )


def _remedy_at_caller(code: str) -> str:
    """What to do at the async caller when the helper itself stays sync."""
    if code == "HD501":  # a thread shares the GIL: CPU work needs another process
        return "run the call in a process pool there"
    return "run the call in a thread there (`await asyncio.to_thread(...)`)"


def _streams(
    files: Sequence[FileFacts | None],
    funcs: dict[FuncKey, FunctionFacts],
    resolver: _Resolver,
    enabled: Enabled,
    display: Callable[[int], str],
) -> list[RawFinding]:
    if not enabled("HD301"):
        return []
    out: list[RawFinding] = []
    done: set[FuncKey] = set()
    for i, f in enumerate(files):
        if f is None:
            continue
        for sink in f.sinks:
            found = resolver.resolve(sink.generator, i)
            if found is None or found[0] != "func":
                continue
            key = found[1]
            assert isinstance(key, tuple)
            fn = funcs.get(key)
            if fn is None or key in done or fn.stream_loop is None:
                continue
            done.add(key)
            loop: Event = fn.stream_loop
            effect = get_rule("HD301").effect
            short = sink.sink.rpartition(".")[2]
            message = (
                f"async generator `{fn.qualname}` {effect}: its `{loop.text}` loop never checks "
                f"`await request.is_disconnected()` and has no cleanup on cancellation "
                f"(streamed by {short} at {display(i)}:{sink.line})"
            )
            out.append(RawFinding(key[0], fn.qualname, "HD301", loop.line, loop.col, message))
    return out


# ---- HD601: locks taken in opposite orders, or again by the task that holds them -------


@dataclass(frozen=True)
class _Taken:
    """Where a function, holding `outer`, takes the lock `inner` (itself or in a callee)."""

    func: FuncKey
    outer: Lock
    line: int  # the inner `async with`, or the awaited call that leads to it
    col: int
    hops: tuple[Step, ...]  # a chain: the awaits from `func` to the callee that takes it
    inner: Lock
    inner_func: FuncKey  # the function whose `async with` takes it (`func` when direct)
    gates: frozenset[str]  # the other locks held meanwhile: two sides holding one never meet


_Reach = dict[str, tuple[tuple[Step, ...], FuncKey, Lock]]


class _LockOrder:
    """Pairs (outer, inner) of locks taken nested, per function, through awaited calls."""

    def __init__(
        self,
        funcs: dict[FuncKey, FunctionFacts],
        resolver: _Resolver,
        display: Callable[[int], str],
    ) -> None:
        self.funcs = funcs
        self.resolver = resolver
        self.display = display
        self.keys: dict[FuncKey, list[tuple[str, str] | None]] = {}
        self._edges: dict[FuncKey, list[tuple[Await, FuncKey]]] = {}
        self._reach: dict[tuple[FuncKey, bool], _Reach] = {}

    def key(self, func: FuncKey, index: int) -> tuple[str, str] | None:
        """(stable key, kind) of the function's `index`-th lock, or None."""
        keys = self.keys.get(func)
        if keys is None:
            keys = [self.resolver.lock_key(k, func[0]) for k in self.funcs[func].locks]
            self.keys[func] = keys
        return keys[index]

    def edges(self, func: FuncKey) -> list[tuple[Await, FuncKey]]:
        """The project coroutines `func` awaits."""
        found = self._edges.get(func)
        if found is None:
            found = []
            for aw in self.funcs[func].awaits:
                target = self.resolver.resolve(aw.target, func[0])
                if target is None or target[0] != "func":
                    continue
                callee = target[1]
                assert isinstance(callee, tuple)
                fn = self.funcs.get(callee)
                if fn is not None and fn.is_async:
                    found.append((aw, callee))
            self._edges[func] = found
        return found

    def reach(self, start: FuncKey, same_self: bool) -> _Reach:
        """The locks a call of `start` takes every time it runs, with the shortest way there.

        Only unconditional `async with`s and awaits count (a lock taken under an `if` may be
        skipped on purpose); a per-instance lock only through `self.method()` calls, from a
        start itself reached through `self` (`same_self`): then it is the caller's object's.
        """
        memo = self._reach.get((start, same_self))
        if memo is not None:
            return memo
        out: _Reach = {}
        queue: deque[tuple[FuncKey, bool, tuple[Step, ...]]] = deque([(start, same_self, ())])
        seen = {(start, same_self)}
        while queue:
            func, on_self, hops = queue.popleft()
            fn = self.funcs[func]
            for i, lock in enumerate(fn.locks):
                found = self.key(func, i)
                if found is None or lock.conditional or (lock.instance and not on_self):
                    continue
                out.setdefault(found[0], (hops, func, lock))
            for aw, callee in self.edges(func):
                nxt = on_self and aw.on_self
                if aw.conditional or (callee, nxt) in seen or (callee, True) in seen:
                    continue
                seen.add((callee, nxt))
                step = Step(func[0], fn.qualname, aw.line, aw.col, aw.text)
                queue.append((callee, nxt, (*hops, step)))
        self._reach[(start, same_self)] = out
        return out

    def pairs(self) -> dict[tuple[str, str], list[_Taken]]:
        """(outer, inner) -> every place a function holding `outer` takes `inner`."""
        out: dict[tuple[str, str], list[_Taken]] = {}
        for func in sorted(self.funcs):
            fn = self.funcs[func]
            if not fn.locks:
                continue  # holds nothing, so takes nothing in an order
            for i, lock in enumerate(fn.locks):
                inner = self.key(func, i)
                for h in lock.held if inner is not None else ():
                    outer = self.key(func, h)
                    if inner is not None and outer is not None:
                        gates = self._gates(func, lock.held, h)
                        taken = _Taken(
                            func, fn.locks[h], lock.line, lock.col, (), lock, func, gates
                        )
                        out.setdefault((outer[0], inner[0]), []).append(taken)
            callees = {(aw.line, aw.col, aw.target): c for aw, c in self.edges(func)}
            for aw in fn.awaits:
                callee = callees.get((aw.line, aw.col, aw.target)) if aw.held else None
                if callee is None:
                    continue
                first = Step(func[0], fn.qualname, aw.line, aw.col, aw.text)
                for key, (hops, end, lock) in sorted(self.reach(callee, aw.on_self).items()):
                    for h in aw.held:
                        outer = self.key(func, h)
                        if outer is None:
                            continue
                        gates = self._gates(func, aw.held, h)
                        taken = _Taken(
                            func, fn.locks[h], aw.line, aw.col, (first, *hops), lock, end, gates
                        )
                        out.setdefault((outer[0], key), []).append(taken)
        return out

    def _gates(self, func: FuncKey, held: tuple[int, ...], outer: int) -> frozenset[str]:
        keys = (self.key(func, g) for g in held if g != outer)
        return frozenset(k[0] for k in keys if k is not None)

    def findings(self) -> list[RawFinding]:
        if not any(fn.locks for fn in self.funcs.values()):
            return []
        pairs = self.pairs()
        kinds = {k[0]: k[1] for keys in self.keys.values() for k in keys if k is not None}
        out: list[RawFinding] = []
        for (a, b), sides in sorted(pairs.items()):
            if a == b:
                if kinds.get(a) in NON_REENTRANT:
                    out.extend(self._again(t) for t in sides)
                continue
            for taken in sides:
                # the first opposite pair that no lock held on both sides keeps apart
                other = next((t for t in pairs.get((b, a), ()) if not t.gates & taken.gates), None)
                if other is not None:
                    out.append(self._inversion(taken, other, f"{kinds.get(a)} {kinds.get(b)}"))
        return out

    def _where(self, taken: _Taken) -> str:
        return f"{self.display(taken.inner_func[0])}:{taken.inner.line}"

    def _via(self, taken: _Taken) -> str:
        """`in `helper()``, or `in `deep`, through `helper()`` for a longer chain."""
        call = f"`{taken.hops[0].text}()`"
        if len(taken.hops) == 1:
            return f"in {call}"
        return f"in `{self.funcs[taken.inner_func].qualname}`, through {call}"

    def _side(self, taken: _Taken) -> str:
        head = f"`{self.funcs[taken.func].qualname}` takes `{taken.outer.text}` then "
        head += f"`{taken.inner.text}`"
        if taken.hops:
            head += f" {self._via(taken)}"
        return f"{head} ({self._where(taken)})"

    def _finding(self, taken: _Taken, message: str) -> RawFinding:
        fn = self.funcs[taken.func]
        chain: tuple[str, ...] = ()
        steps: tuple[Step, ...] = ()
        if taken.hops:
            end = self.funcs[taken.inner_func].qualname
            last = f"async with {taken.inner.text}"
            chain = (*(h.function for h in taken.hops), end, last)
            inner = taken.inner
            steps = (*taken.hops, Step(taken.inner_func[0], end, inner.line, inner.col, last))
        return RawFinding(
            taken.func[0], fn.qualname, "HD601", taken.line, taken.col, message, chain, steps
        )

    def _inversion(self, taken: _Taken, other: _Taken, kinds: str) -> RawFinding:
        effect = "two requests running them at once can wait on each other for ever"
        if "Semaphore" in kinds:
            effect = (
                "requests running them at once can wait on each other for ever once the "
                "semaphore's tokens are all taken"
            )
        return self._finding(taken, f"{self._side(taken)}; {self._side(other)}: {effect}")

    def _again(self, taken: _Taken) -> RawFinding:
        name = self.funcs[taken.func].qualname
        outer_at = f"{self.display(taken.func[0])}:{taken.outer.line}"
        effect = "an `asyncio.Lock` is not re-entrant, so the task waits for itself for ever"
        if not taken.hops:
            message = (
                f"`{name}` takes `{taken.inner.text}` while it already holds it "
                f"(`async with {taken.outer.text}` at {outer_at}): {effect}"
            )
        else:
            message = (
                f"`{name}` holds `{taken.outer.text}` ({outer_at}) and takes it again "
                f"{self._via(taken)} (`async with {taken.inner.text}`, {self._where(taken)}): "
                f"{effect}"
            )
        return self._finding(taken, message)


# ---- HD602: pooled connections not given back ------------------------------------------

_LEAK_WHAT = {
    "httpx": ("the streamed response", "`async with client.stream(...)`", "`await {}.aclose()`"),
    "aiohttp": ("the response", "`async with session.get(...)`", "`{}.release()`"),
    "session": ("the session", "`async with`", "`await {}.close()`"),
    "connection": ("the connection", "`async with engine.connect()`", "`await {}.close()`"),
}


def _leak_message(leak: Leak) -> str:
    what, use, close = _LEAK_WHAT[leak.kind]
    close = close.format(leak.name or "response")
    opened = f"`{leak.text}`"
    if leak.kind == "aiohttp":
        return (
            f"{opened} keeps a pooled connection until the response is read or released: "
            f"nothing reads, releases or closes `{leak.name}` here, so the connection stays "
            f"checked out until the response is garbage-collected; use {use} or {close} "
            "in a `finally`"
        )
    held = "keeps a pooled connection until it is closed"
    until = "for ever"  # httpx has no finalizer that gives the connection back
    if leak.kind in ("session", "connection"):
        until = f"until {what} is garbage-collected"
    if leak.kind == "session":
        held = "keeps a pooled connection from its first query until it is closed"
    if leak.why == "dropped":
        return (
            f"{opened} {held}, and {what} is dropped unclosed: the connection stays "
            f"checked out {until}; use {use}"
        )
    if leak.why == "late":
        ended = "read to its end or closed" if leak.kind == "httpx" else "closed"
        return (
            f"{opened} {held}, and {what} is {ended} only when nothing goes wrong: an error "
            f"or a cancellation (a client that disconnects) leaves the connection checked "
            f"out {until}; use {use}, or {close} in a `finally`"
        )
    return (
        f"{opened} {held}, and nothing closes {what} on every path: no {use}, no {close} in "
        f"a `finally`, not returned or handed on; the connection stays checked out {until}"
    )


def _leaks(funcs: dict[FuncKey, FunctionFacts], resolver: _Resolver) -> list[RawFinding]:
    out: list[RawFinding] = []
    for key, fn in funcs.items():
        for leak in fn.leaks:
            if leak.confirm:
                found = resolver.resolve_object(leak.confirm, key[0])
                if found is None or found[1] != leak.expect:
                    continue
            message = _leak_message(leak)
            out.append(RawFinding(key[0], fn.qualname, "HD602", leak.line, leak.col, message))
    return out
