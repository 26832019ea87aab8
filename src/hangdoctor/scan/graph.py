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

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hangdoctor.catalog import get_rule
from hangdoctor.scan.facts import Call, Event, FileFacts, FunctionFacts
from hangdoctor.scan.knowledge import PROPAGATING, Knowledge, canonical

__all__ = ["RawFinding", "Step", "find"]

_MAX_DEPTH = 12  # re-export and base-class hops while resolving one name

FuncKey = tuple[int, str]  # (file index, qualname)


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


@dataclass(frozen=True)
class _Own:
    """A blocking call in a function's own code, with its code."""

    code: str
    line: int
    col: int
    name: str
    text: str
    kind: str


class _Resolver:
    def __init__(self, files: Sequence[FileFacts | None], kb: Knowledge) -> None:
        self.files = files
        self.kb = kb
        seen: dict[str, list[int]] = {}
        self.funcs: list[dict[str, FunctionFacts]] = []
        self.quiet: list[frozenset[str]] = []
        self.classes: list[dict[str, tuple[str, ...]]] = []
        self.aliases: list[dict[str, str]] = []
        self.instances: list[dict[str, str]] = []
        for i, f in enumerate(files):
            if f is None:
                self.funcs.append({})
                self.quiet.append(frozenset())
                self.classes.append({})
                self.aliases.append({})
                self.instances.append({})
                continue
            seen.setdefault(f.module, []).append(i)
            self.funcs.append({fn.qualname: fn for fn in f.functions})
            self.quiet.append(frozenset(f.quiet))
            self.classes.append({c.qualname: c.bases for c in f.classes})
            self.aliases.append(dict(f.aliases))
            self.instances.append(dict(f.instances))
        # a module name two files share (two scripts called app.py) resolves to neither
        self.modules = {m: ix[0] for m, ix in seen.items() if len(ix) == 1}
        self.roots = {m.split(".", 1)[0] for m in seen}
        self._memo: dict[tuple[str, int], tuple[str, FuncKey | str] | None] = {}

    def resolve(self, target: str, origin: int) -> tuple[str, FuncKey | str] | None:
        """("func", (file, qualname)) or ("ext", qualified library callable), or None."""
        if target.split(".", 1)[0] not in self.roots:
            return None  # a library call the catalog does not name
        own = self.files[origin]
        # only a name inside the caller's own module depends on who calls
        key = (target, origin if own is not None and target.startswith(own.module) else -1)
        if key not in self._memo:
            self._memo[key] = self._resolve(target, origin, 0)
        return self._memo[key]

    def _resolve(self, target: str, origin: int, depth: int) -> tuple[str, FuncKey | str] | None:
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

    def _method(
        self, index: int, cls: str, method: str, depth: int
    ) -> tuple[str, FuncKey | str] | None:
        if depth > _MAX_DEPTH:
            return None
        key = f"{cls}.{method}"
        if key in self.funcs[index] or key in self.quiet[index]:
            return ("func", (index, key))
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
    for call in fn.calls:
        if call.nonblocking:
            continue
        found = resolver.resolve(call.target, key[0])
        if found is not None and found[0] == "ext":
            name = found[1]
            assert isinstance(name, str)
            code = kb.call_code(name)
            if code is not None:
                out.append((_Own(code, call.line, call.col, name, call.text, "call"), call))
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
) -> list[RawFinding]:
    """Every finding of the project: direct, through sync helpers, and streaming (HD301)."""
    resolver = _Resolver(files, kb)
    funcs: dict[FuncKey, FunctionFacts] = {}
    for i, f in enumerate(files):
        if f is not None:
            for fn in f.functions:
                funcs[(i, fn.qualname)] = fn
    own: dict[FuncKey, list[tuple[_Own, Call | None]]] = {
        key: _own_events(key, fn, resolver, kb) for key, fn in funcs.items()
    }
    # reverse edges into sync functions: callee -> [(caller, call)]
    callers: dict[FuncKey, list[tuple[FuncKey, Call]]] = {}
    edges: dict[FuncKey, list[tuple[Call, FuncKey]]] = {}  # caller -> [(call, callee)]
    for key, fn in funcs.items():
        for call in fn.calls:
            found = resolver.resolve(call.target, key[0])
            if found is None or found[0] != "func":
                continue
            callee = found[1]
            assert isinstance(callee, tuple)
            target = funcs.get(callee)
            if target is None or target.is_async or callee == key:
                continue
            if target.is_generator and call.argument:
                continue  # a sync generator handed on (to StreamingResponse) is iterated elsewhere
            callers.setdefault(callee, []).append((key, call))
            edges.setdefault(key, []).append((call, callee))
    for sites in callers.values():
        sites.sort(key=lambda c: (c[0], c[1].line, c[1].col))
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
    return out


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
    names.append(blocking)
    effect = get_rule(code).effect
    where = f"{display(end_file)}:{end.line}"
    message = f"`{call.text}()` {effect}: {' -> '.join(names)} ({where})"
    return RawFinding(
        key[0], fn.qualname, code, call.line, call.col, message, tuple(names), tuple(steps)
    )


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
