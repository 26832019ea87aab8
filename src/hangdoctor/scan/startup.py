"""Code that runs once, before the server takes requests or after it stopped taking them.

A blocking call in a lifespan's startup delays readiness; in its shutdown it delays
the exit. Neither hangs a request: the server does not accept connections before
startup has finished, and runs shutdown once the connections are closed. The scan
reports such findings apart (`Finding.phase`), so they do not fail the check.

Two halves, like the rest of the scan:

- `file_phases` reads one file's AST (cached with its facts): which callables it
  registers as a lifespan or a startup/shutdown handler (`FastAPI(lifespan=...)`,
  `Starlette(on_startup=[...])`, `@app.on_event("startup")`, aiohttp's
  `app.on_startup.append(...)`), where each async generator first yields, where a
  coroutine starts serving (`await server.serve()`), the branches of an ASGI lifespan
  handler (`if message["type"] == "lifespan.startup":`), and which functions are
  handed on as values (routes, dependencies, callbacks): those run on requests too.
- `Phases` joins them across files: the registered functions, their lines before
  and after the `yield`, and the coroutines awaited only from such code, at any depth.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from hangdoctor.scan.facts import FileFacts, FunctionFacts, Phase
from hangdoctor.scan.names import SCOPE_NODES, child_fields, children, dotted_parts

__all__ = [
    "REGISTRATION_WORDS",
    "SHUTDOWN",
    "STARTUP",
    "Phases",
    "file_phases",
    "handed_values",
    "reason",
]

STARTUP = "startup"
SHUTDOWN = "shutdown"

_REASONS = {
    STARTUP: "runs once before the server takes requests: it delays startup (and readiness), "
    "it does not hang a request",
    SHUTDOWN: "runs once after the server stopped taking requests: it delays shutdown (past the "
    "grace period the process is killed, skipping what follows), it does not hang a request",
}

# `x.on_event("startup")`-like decorators, and decorators whose name says the phase
_PHASE_DECORATORS = {
    "before_serving": STARTUP,  # Quart
    "after_serving": SHUTDOWN,
    "before_server_start": STARTUP,  # Sanic
    "after_server_stop": SHUTDOWN,
}
# `app.on_startup.append(f)` (aiohttp, Starlette's router) -> the phase of `f`
_HOOK_LISTS = {
    "on_startup": STARTUP,
    "on_shutdown": SHUTDOWN,
    "on_cleanup": SHUTDOWN,
    "cleanup_ctx": "lifespan",
}
# decorators that leave a function where it was: it is not handed to anyone
_PLAIN_DECORATORS = frozenset(
    {"asynccontextmanager", "staticmethod", "classmethod", "wraps", "override", "overload"}
)
_SERVE = frozenset({"serve", "serve_forever"})
# Words without which a file registers no coroutine for a phase: a scan may leave a file
# that has none of them (and no `async`/`await`) unanalysed (`files.may_matter`).
# `@app.on_event(...)` and the phase decorators sit on the `async def` they register.
REGISTRATION_WORDS = frozenset(
    {"lifespan", "add_event_handler", "on_startup", "on_shutdown", *_HOOK_LISTS}
)
_STDLIB = frozenset(sys.stdlib_module_names)

# the fields of a statement that hold blocks of statements: scopes of their own here
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
# what `_handed` can take for a callable: anything else is skipped without a call
_HANDED = frozenset({ast.Name, ast.Attribute, ast.Starred})
_own_fields_cache: dict[type[ast.AST], tuple[str, ...]] = {}


def _own_fields(cls: type[ast.AST]) -> tuple[str, ...]:
    """The fields of a statement other than its blocks, in order: its own expressions."""
    fields = _own_fields_cache.get(cls)
    if fields is None:
        fields = tuple(f for f in cls._fields if f not in _BLOCKS)
        _own_fields_cache[cls] = fields
    return fields


def _registers(call: ast.Call) -> bool:
    """Whether `_FilePhases.call` may register something at this call (a superset)."""
    for kw in call.keywords:
        if kw.arg in ("lifespan", "on_startup", "on_shutdown"):
            return True
    func = call.func
    if not isinstance(func, ast.Attribute) or not call.args:
        return False
    if func.attr == "add_event_handler":
        return True
    return (
        func.attr in ("append", "insert")
        and isinstance(func.value, ast.Attribute)
        and func.value.attr in _HOOK_LISTS
    )


_TYPE_ALIAS = getattr(ast, "TypeAlias", None)  # 3.12+: its type parameters are no expressions
# nodes of a function's own code that `handed_values` looks at
_NESTED = frozenset(
    {ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda}
    | ({_TYPE_ALIAS} if _TYPE_ALIAS is not None else set())
)
_SEQUENCES = frozenset({ast.List, ast.Tuple, ast.Set})
_LOOKED_AT = frozenset(
    {ast.Call, ast.Dict, ast.Assign, ast.AnnAssign, ast.Return, ast.With, ast.AsyncWith}
    | _SEQUENCES
    | _NESTED
)


def handed_values(nodes: Iterable[ast.AST]) -> list[ast.expr] | None:
    """What a function's body hands on (call arguments, elements of lists, tuples and sets,
    dict values, assigned and returned values), from every node of its own code in any
    order (the scan's walk of the function, `visit._walk_flagged`); None when the body
    registers something, has a scope inside (a def, a class, a lambda) or binds a `with`
    to more than a name: then its body is walked here, in order.

    The scan already walks every function for its own facts: taking these from that
    walk spares a second walk of every expression of the file, a fifth of its analysis.
    """
    out: list[ast.expr] = []
    looked_at = _LOOKED_AT
    for n in nodes:
        kind = type(n)
        if kind not in looked_at:
            continue
        if kind is ast.Call:
            assert isinstance(n, ast.Call)
            if _registers(n):
                return None
            out.extend(n.args)
            out.extend([k.value for k in n.keywords])
        elif kind in _SEQUENCES:
            assert isinstance(n, (ast.List, ast.Tuple, ast.Set))
            out.extend(n.elts)
        elif kind is ast.Dict:
            assert isinstance(n, ast.Dict)
            out.extend(n.values)
        elif kind is ast.Assign:
            assert isinstance(n, ast.Assign)
            if any(
                isinstance(t, ast.Attribute) and t.attr == "lifespan_context" for t in n.targets
            ):
                return None
            out.append(n.value)
        elif kind is ast.AnnAssign or kind is ast.Return:
            assert isinstance(n, (ast.AnnAssign, ast.Return))
            if n.value is not None:
                out.append(n.value)
        elif kind is ast.With or kind is ast.AsyncWith:
            assert isinstance(n, (ast.With, ast.AsyncWith))
            # `statement` reads only the context expression; a target like `as (a, b)`
            # would hand on names it never sees
            for item in n.items:
                if item.optional_vars is not None and dotted_parts(item.optional_vars) is None:
                    return None
        else:
            return None  # a nested scope: the order of what it registers matters
    return out


Handed = Mapping[int, "list[ast.expr] | None"]
Dotted = Callable[[ast.expr, ast.AST | None], "str | None"]
FuncKey = tuple[int, str]


def reason(phase: str) -> str:
    """Why a finding in code of this phase is shown apart."""
    return _REASONS[phase]


def _own(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's own code, in source order (not nested scopes); a stack,
    not recursion, so that absurdly deep expressions cost no more than shallow ones."""
    stack = children(node)
    stack.reverse()
    while stack:
        cur = stack.pop()
        if isinstance(cur, SCOPE_NODES):
            continue
        yield cur
        below = children(cur)
        below.reverse()
        stack.extend(below)


def _name(expr: ast.expr) -> str:
    parts = dotted_parts(expr)
    return parts[-1] if parts else ""


def _is_phase_string(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and expr.value in ("lifespan.startup", "lifespan.shutdown"):
        return STARTUP if expr.value == "lifespan.startup" else SHUTDOWN
    return None


def _branch_phase(test: ast.expr) -> str | None:
    """`message["type"] == "lifespan.startup"` (or `in (...)`): the branch's phase."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    op, right = test.ops[0], test.comparators[0]
    if isinstance(op, ast.Eq):
        return _is_phase_string(right) or _is_phase_string(test.left)
    if isinstance(op, ast.In) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        found = {_is_phase_string(e) for e in right.elts}
        return found.pop() if len(found) == 1 else None
    return None


def _span(body: Sequence[ast.stmt]) -> tuple[int, int]:
    return body[0].lineno, getattr(body[-1], "end_lineno", None) or body[-1].lineno


class _FilePhases:
    def __init__(self, module: str, dotted: Dotted, handed: Handed) -> None:
        self.module = module
        self.dotted = dotted
        self.handed = handed
        self.out: list[Phase] = []
        self.refs: set[str] = set()

    def register(self, expr: ast.expr, role: str, where: ast.AST | None) -> None:
        elements = expr.elts if isinstance(expr, (ast.List, ast.Tuple)) else [expr]
        for e in elements:
            target = self.dotted(e, where)
            if target:
                self.out.append(Phase(target, role))

    def scope(self, body: Sequence[ast.AST], prefix: str, where: ast.AST | None) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, prefix + stmt.name, where)
            elif isinstance(stmt, ast.ClassDef):
                for d in stmt.decorator_list:
                    self.expression(d, where)
                self.scope(stmt.body, f"{prefix}{stmt.name}.", where)
            else:
                self.statement(stmt, prefix, where)

    def statement(self, stmt: ast.AST, prefix: str, where: ast.AST | None) -> None:
        """A statement of a scope's body (nested blocks included) outside nested defs."""
        for field in _BLOCKS:
            part = getattr(stmt, field, None)
            if isinstance(part, list):
                self.scope(part, prefix, where)
        for field in _own_fields(type(stmt)):
            value = getattr(stmt, field, None)
            for v in value if isinstance(value, list) else (value,):
                if isinstance(v, ast.withitem):
                    v = v.context_expr
                if isinstance(v, ast.expr):
                    self.expression(v, where)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Return)) and stmt.value is not None:
            self._handed(stmt.value, where)
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                if isinstance(t, ast.Attribute) and t.attr == "lifespan_context":
                    self.register(stmt.value, "lifespan", where)

    def expression(self, expr: ast.expr, where: ast.AST | None) -> None:
        # Every node below `expr`, breadth first (the order of `ast.walk`, so registrations
        # keep their order), in one loop: this pass meets every expression of the file.
        queue: list[ast.AST] = [expr]
        handed = _HANDED
        i = 0
        while i < len(queue):
            n = queue[i]
            i += 1
            kind = type(n)
            if kind is ast.Call:
                assert isinstance(n, ast.Call)
                self.call(n, where)
                for a in n.args:
                    if type(a) in handed:
                        self._handed(a, where)
                for k in n.keywords:
                    if type(k.value) in handed:
                        self._handed(k.value, where)
            elif kind is ast.List or kind is ast.Tuple or kind is ast.Set:
                assert isinstance(n, (ast.List, ast.Tuple, ast.Set))
                for e in n.elts:
                    if type(e) in handed:
                        self._handed(e, where)
            elif kind is ast.Dict:
                assert isinstance(n, ast.Dict)
                for v in n.values:
                    if type(v) in handed:
                        self._handed(v, where)
            for field in child_fields(kind):
                value = getattr(n, field, None)
                if isinstance(value, list):
                    queue.extend([v for v in value if isinstance(v, ast.AST)])
                elif isinstance(value, ast.AST):
                    queue.append(value)

    def _handed(self, expr: ast.expr, where: ast.AST | None) -> None:
        """A name handed on as a value (an endpoint, a dependency, a callback): whoever
        gets it may call it on a request, so it inherits no phase from its awaiters."""
        if isinstance(expr, ast.Starred):
            expr = expr.value
        if not isinstance(expr, (ast.Name, ast.Attribute)):
            return
        target = self.dotted(expr, where)
        if target and "." in target and target.split(".", 1)[0] not in _STDLIB:
            self.refs.add(target)

    def call(self, call: ast.Call, where: ast.AST | None) -> None:
        for kw in call.keywords:
            if kw.arg == "lifespan":
                self.register(kw.value, "lifespan", where)
            elif kw.arg in ("on_startup", "on_shutdown"):
                self.register(kw.value, STARTUP if kw.arg == "on_startup" else SHUTDOWN, where)
        func = call.func
        if not isinstance(func, ast.Attribute) or not call.args:
            return
        if func.attr == "add_event_handler" and len(call.args) == 2:
            first = call.args[0]
            if isinstance(first, ast.Constant) and first.value in (STARTUP, SHUTDOWN):
                self.register(call.args[1], str(first.value), where)
        elif func.attr in ("append", "insert") and isinstance(func.value, ast.Attribute):
            role = _HOOK_LISTS.get(func.value.attr)
            if role is not None:
                self.register(call.args[-1], role, where)

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, where: ast.AST | None
    ) -> None:
        dotted = f"{self.module}.{qualname}"
        entry = False
        for d in node.decorator_list:
            self.expression(d, where)
            phase = self._decorator_phase(d)
            if phase is not None:
                self.out.append(Phase(dotted, phase))
            elif _name(d.func if isinstance(d, ast.Call) else d) not in _PLAIN_DECORATORS:
                entry = True  # `@app.get(...)`: handed to the framework
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.expression(default, where)
        if entry:
            self.refs.add(dotted)
        if isinstance(node, ast.AsyncFunctionDef):
            self._splits(node, dotted)
            names = {_name(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list}
            if "asynccontextmanager" in names and "lifespan" in node.name.lower():
                self.out.append(Phase(dotted, "lifespan"))
        values = self.handed.get(id(node))
        if values is None:
            self.scope(node.body, f"{qualname}.<locals>.", node)
            return
        # a body with nothing to register and no scope inside: only what it hands on counts
        for v in values:
            if type(v) in _HANDED:
                self._handed(v, node)

    @staticmethod
    def _decorator_phase(d: ast.expr) -> str | None:
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute):
            if d.func.attr in ("on_event", "listener") and d.args:
                first = d.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    value = first.value
                    if value in (STARTUP, SHUTDOWN):
                        return value
                    return _PHASE_DECORATORS.get(value)
            return None
        return _PHASE_DECORATORS.get(_name(d))

    def _splits(self, node: ast.AsyncFunctionDef, dotted: str) -> None:
        """Where the function's startup ends: its first `yield`, or `await server.serve()`;
        and its `"lifespan.startup"` / `"lifespan.shutdown"` branches."""
        yielded = served = False
        withs: list[ast.With | ast.AsyncWith] = []
        for n in _own(node):
            if isinstance(n, (ast.With, ast.AsyncWith)):
                withs.append(n)
            elif isinstance(n, (ast.Yield, ast.YieldFrom)) and not yielded:
                yielded = True
                exits = tuple(
                    w.lineno for w in withs if w.body[0].lineno <= n.lineno <= _span(w.body)[1]
                )
                self.out.append(Phase(dotted, "yield", n.lineno, n.lineno, exits))
            elif isinstance(n, ast.Await) and isinstance(n.value, ast.Call) and not served:
                if _name(n.value.func) in _SERVE:
                    served = True
                    self.out.append(Phase(dotted, "serve", n.lineno, n.lineno))
            elif isinstance(n, ast.If):
                phase = _branch_phase(n.test)
                if phase is not None:
                    start, end = _span(n.body)
                    self.out.append(Phase(dotted, phase, start, end))
            elif isinstance(n, ast.match_case) and isinstance(n.pattern, ast.MatchValue):
                phase = _is_phase_string(n.pattern.value)
                if phase is not None:
                    start, end = _span(n.body)
                    self.out.append(Phase(dotted, phase, start, end))


def file_phases(
    tree: ast.Module, module: str, dotted: Dotted, handed: Handed | None = None
) -> tuple[Phase, ...]:
    """One file's startup and shutdown facts (see the module docstring).

    `dotted(expr, function)` resolves a name as written in `function` (None: at
    module level) to the dotted callable it refers to, or None. `handed` may give,
    by `id` of a function node, `handed_values` of its own nodes: that function's
    body is then not walked again.
    """
    found = _FilePhases(module, dotted, handed or {})
    found.scope(tree.body, "", None)
    return (*found.out, *(Phase(r, "ref") for r in sorted(found.refs)))


# ---- across files ---------------------------------------------------------------------

Resolve = Callable[[str, int], "FuncKey | None"]
_WHOLE = 1 << 30  # "every line of the function"


class Phases:
    """The phase (startup, shutdown, or "" for request time) of each line of code."""

    def __init__(
        self,
        files: Sequence[FileFacts | None],
        funcs: Mapping[FuncKey, FunctionFacts],
        resolve: Resolve,
    ) -> None:
        self.ranges: dict[FuncKey, list[tuple[int, int, str]]] = {}  # first match wins
        self.exits: dict[FuncKey, frozenset[int]] = {}  # `with` lines that exit at shutdown
        self.whole: dict[FuncKey, str] = {}
        # coroutines given a phase because only startup (shutdown) code awaits them: a file
        # that hands one on anywhere would take it back (`graph.Demand`)
        self.inherited: set[FuncKey] = set()
        if not any(f is not None and f.phases for f in files):
            return
        yields: dict[FuncKey, Phase] = {}
        serves: dict[FuncKey, Phase] = {}
        escaped: set[FuncKey] = set()
        registered: list[tuple[FuncKey, str]] = []
        for i, f in enumerate(files):
            for p in f.phases if f is not None else ():
                key = resolve(p.target, i)
                if key is None:
                    continue
                if p.role == "ref":
                    escaped.add(key)
                elif p.role == "yield":
                    yields.setdefault(key, p)
                elif p.role == "serve":
                    serves.setdefault(key, p)
                elif p.line:
                    self.ranges.setdefault(key, []).append((p.line, p.end, p.role))
                else:
                    registered.append((key, p.role))
        for key, role in registered:
            if role != "lifespan":
                self.whole.setdefault(key, role)
            elif key in yields:
                self._split(key, yields[key])
        for key, p in serves.items():
            if key not in self.whole and key not in yields:
                self._split(key, p)
        self._inherit(funcs, escaped, resolve)

    def _split(self, key: FuncKey, at: Phase) -> None:
        spans = self.ranges.setdefault(key, [])
        spans.append((0, at.line, STARTUP))
        spans.append((at.line + 1, _WHOLE, SHUTDOWN))
        self.exits[key] = frozenset(at.exits)

    def of(self, func: FuncKey, line: int, code: str = "") -> str:
        """The phase of a line of a function; "" when it runs on requests."""
        for start, end, phase in self.ranges.get(func, ()):
            if start <= line <= end:
                if code == "HD101" and line in self.exits.get(func, ()):
                    return SHUTDOWN  # the `with` block exits after the `yield`
                return phase
        return self.whole.get(func, "")

    def _inherit(
        self, funcs: Mapping[FuncKey, FunctionFacts], escaped: set[FuncKey], resolve: Resolve
    ) -> None:
        """A coroutine awaited only from startup (or shutdown) code runs only then."""
        awaited: dict[FuncKey, list[tuple[FuncKey, int]]] = {}
        for key in sorted(funcs):
            for aw in funcs[key].awaits:
                callee = resolve(aw.target, key[0])
                if callee is not None and callee != key:
                    awaited.setdefault(callee, []).append((key, aw.line))
        changed = True
        while changed:
            changed = False
            for key, sites in awaited.items():
                if key in self.whole or key in self.ranges or key in escaped:
                    continue
                fn = funcs.get(key)
                if fn is None or not fn.is_async:
                    continue
                phases = {self.of(caller, line) for caller, line in sites}
                if "" in phases:
                    continue
                self.whole[key] = STARTUP if STARTUP in phases else SHUTDOWN
                self.inherited.add(key)
                changed = True
