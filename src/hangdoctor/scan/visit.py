"""One file's facts: what blocks in each function, and whom each function calls.

Two passes over the AST. The first builds the scopes (module, classes,
functions) and what each name is bound to: an import (`ref`), an object of a
type evident from its assignment (`inst`: `s = requests.Session()`, `with
open(p) as f`, a parameter annotated `lock: threading.Lock`, `self._pool =
ThreadPoolExecutor()` anywhere in the class, what a function of the file returns
by its annotation or its `return`s, what a FastAPI `Depends(...)` gives), or
something unknown; a value only another file can type (`other.make()`) keeps
the way to it (`_Value.via`) for `graph` to follow. The second
walks every function's own code (not nested functions, lambdas or classes: they
run elsewhere) and classifies each call with the catalog (`Knowledge`):

- a qualified callable the catalog names -> an `Event` with its code;
- a method on an object of *unknown* type -> an `Event` only when the catalog
  lists the method name as distinctive (`Rule.scan_methods`), and the call is
  neither awaited nor an argument of another call (where it is likely a
  coroutine handed to `asyncio.wait_for` & co);
- a call that may reach another project function -> a `Call`, joined across
  files later (`graph`).

A call whose value is awaited, or that opens an `async with` / feeds an `async
for`, is asynchronous and never blocking. Whether an `Event` is a finding
depends on the function: in async code it is; in a sync function it is part of
the function's summary, reported where async code calls it.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hangdoctor.scan.facts import (
    Await,
    Call,
    ClassInfo,
    Event,
    FileFacts,
    FunctionFacts,
    Held,
    Leak,
    Lock,
    Sink,
    deferred_facts,
)
from hangdoctor.scan.holds import (
    AIOHTTP,
    AIOHTTP_METHODS,
    ASYNC_SELF,
    ENGINE,
    HTTPX,
    LOCK_KINDS,
    SESSION_CLASSES,
    SESSION_FACTORY,
    THREAD_LOCKS,
    long_body,
    normal_type,
    release,
)
from hangdoctor.scan.knowledge import Knowledge, canonical
from hangdoctor.scan.names import dotted_parts, import_bindings, iter_scope, safe_unparse
from hangdoctor.scan.startup import file_phases, handed_values

__all__ = ["file_facts", "file_index"]

_BUILTINS = frozenset(dir(builtins))
_STDLIB = frozenset(sys.stdlib_module_names)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_PATH = "pathlib.Path"
_ATTRIBUTE_TYPES = {f"{_PATH}.parent": _PATH}
_TEXT_LIMIT = 80
_STATEMENTS = frozenset({ast.Assign, ast.AnnAssign, ast.Expr})  # where a resource is opened
_PROPERTIES = frozenset({"property", "cached_property", "functools.cached_property"})
_DEPENDS = frozenset(
    f"fastapi.{where}{kind}"
    for where in ("", "params.", "param_functions.")
    for kind in ("Depends", "Security")
)
_ANNOTATED = frozenset({"typing.Annotated", "typing_extensions.Annotated"})
# what a generator annotated `Iterator[X]` (and the like) yields: its first argument
_ITERATORS = frozenset(
    f"{module}.{name}"
    for module in ("typing", "collections.abc")
    for name in ("Iterator", "Iterable", "Generator", "AsyncIterator", "AsyncGenerator")
)
# builtins that run an iterable to its end (or one step: `next`), and those that pass the
# iteration on to their arguments (`for i, x in enumerate(gen())`)
_CONSUMERS = frozenset(
    {"list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any", "all"}
    | {"next"}
)
_PASS_THROUGH = frozenset({"enumerate", "zip", "iter", "reversed", "map", "filter"})
# the nodes `_iterated` and `_gives` look at (checked by exact type: they see every node)
_ITERATING = frozenset(
    {ast.For, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.YieldFrom}
    | {ast.With, ast.Call}
)
_GIVING = frozenset({ast.Return, ast.Yield, ast.YieldFrom})
_OBJECT_KINDS = frozenset({*LOCK_KINDS, *THREAD_LOCKS, SESSION_FACTORY, ENGINE})

# flags of a node, given by its parent
_AWAITED = 1  # the value of an `await`
_ASYNC_CTX = 2  # an `async with` item or an `async for` iterable
_ARGUMENT = 4  # an argument of a call
# ... and inherited by everything below it
_COND = 8  # in a branch, a loop body or an `except`: may not run every time
_CTX_SHIFT = 4  # the bits above: which `async with` body it is in (0: none)
_INHERITED = ~(_AWAITED | _ASYNC_CTX | _ARGUMENT)
_TRY: tuple[type[ast.AST], ...] = tuple(
    t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None
)


@dataclass(frozen=True)
class _Value:
    """What a name or expression is, as far as the file shows."""

    kind: str  # "ref" | "method" | "inst" | "unknown" | "opaque" | "none"
    name: str = ""  # ref/method: dotted callable; inst: dotted type
    origin: str = ""  # a value a call returned: the callee (links `g = gen()` to `gen`)
    # unknown here, known to the file that defines it: "pkg.db.pool()" (what the call
    # returns), "Depends(pkg.deps.get_db)" (what the dependency gives), then ".method()"s;
    # resolved in this file when it can be, else across files (`graph`)
    via: str = ""


_UNKNOWN = _Value("unknown")
_OPAQUE = _Value("opaque")
_NONE = _Value("none")


def _merge(old: _Value | None, new: _Value) -> _Value:
    """A name bound twice keeps a type only when both agree (`x = None` agrees with any)."""
    if old is None or old == new or new.kind == "none":
        return old or new
    if old.kind == "none":
        return new
    return _UNKNOWN


class _Scope:
    __slots__ = ("attrs", "bindings", "cls", "globals", "kind", "node", "nonlocals", "parent")

    def __init__(self, kind: str, node: ast.AST, parent: _Scope | None) -> None:
        self.kind = kind  # "module" | "class" | "function"
        self.node = node
        self.parent = parent
        self.bindings: dict[str, _Value] = {}
        self.attrs: dict[str, _Value] = {}  # class scopes: `self.x = ...` in its methods
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.cls: str = ""  # methods: the dotted name of their class

    def bind(self, name: str, value: _Value) -> None:
        if name in self.globals or name in self.nonlocals:
            return
        self.bindings[name] = _merge(self.bindings.get(name), value)


def _text(expr: ast.expr) -> str:
    """An expression as written: cheap for the usual dotted name, `ast.unparse` otherwise."""
    parts = dotted_parts(expr)
    return ".".join(parts) if parts is not None else safe_unparse(expr, _TEXT_LIMIT)


def _names_flag(expr: ast.expr, flags: frozenset[str]) -> bool:
    """`os.WNOHANG`, `fcntl.LOCK_EX | fcntl.LOCK_NB`: an argument that names a flag."""
    while isinstance(expr, ast.BinOp):
        if _names_flag(expr.right, flags):
            return True
        expr = expr.left
    if isinstance(expr, ast.Attribute):
        return expr.attr in flags
    return isinstance(expr, ast.Name) and expr.id in flags


def _is_class_name(dotted: str) -> bool:
    last = dotted.rpartition(".")[2]
    return bool(last) and last[0].isupper() and not last.isupper()


def _scope_statements(node: ast.AST) -> Iterator[ast.AST]:
    """The statements (and `except` clauses) of a scope's body, nested blocks included.

    Names are bound by statements, so the first pass never needs to look at
    expressions: it visits a fraction of the nodes.
    """
    body: list[ast.AST] = getattr(node, "body", [])
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (*_FUNCS, ast.ClassDef)):
            continue
        nested: list[ast.AST] = [*getattr(stmt, "body", ()), *getattr(stmt, "handlers", ())]
        for case in getattr(stmt, "cases", ()):
            nested.extend(case.body)
        nested.extend(getattr(stmt, "orelse", ()))
        nested.extend(getattr(stmt, "finalbody", ()))
        stack.extend(reversed(nested))


_NO_CHILD_FIELDS = frozenset({"ctx", "op", "type_comment", "kind"})
_child_fields_cache: dict[type[ast.AST], tuple[str, ...]] = {}


def _child_fields(cls: type[ast.AST]) -> tuple[str, ...]:
    fields = _child_fields_cache.get(cls)
    if fields is None:
        if cls in (ast.Name, ast.Constant):
            fields = ()
        else:
            fields = tuple(f for f in cls._fields if f not in _NO_CHILD_FIELDS)
        _child_fields_cache[cls] = fields
    return fields


# how `_walk_flagged` goes into a node: 0 its children as they are, -1 not at all (a scope
# of its own), else the kind of node whose children get flags of their own
_WALK: dict[type[ast.AST], int] = {
    ast.FunctionDef: -1,
    ast.AsyncFunctionDef: -1,
    ast.ClassDef: -1,
    ast.Lambda: -1,
    ast.Name: -1,  # leaves: nothing below (the commonest nodes, skipped at once)
    ast.Constant: -1,
    ast.Await: 1,
    ast.Call: 2,
    ast.AsyncWith: 3,
    ast.AsyncFor: 4,
    ast.If: 5,
    ast.While: 5,
    ast.IfExp: 5,
    ast.For: 6,
    **{t: 7 for t in _TRY},
    ast.Match: 8,
    ast.BoolOp: 9,
}


def _walk_flagged(
    node: ast.AST, withs: list[tuple[ast.AsyncWith, int]] | None = None
) -> list[tuple[ast.AST, int]]:
    """Like `_scope_body`, with each node's flags: from its parent (awaited, argument), and
    inherited from above (in a branch that may not run; the `async with` it is in).

    The `async with` blocks are appended to `withs` as they are met, with their own
    flags; a node inside the body of the n-th one has `flags >> _CTX_SHIFT == n`.

    A list, not a generator: every node of every function passes through here.
    """
    body: list[ast.stmt] = getattr(node, "body", [])
    stack: list[tuple[Any, int]] = [(s, 0) for s in reversed(body)]  # Any: fields by kind
    out: list[tuple[ast.AST, int]] = []
    add = out.append
    walk = _WALK
    child_fields = _child_fields_cache
    node_type = ast.AST
    attribute = ast.Attribute
    while stack:
        pair = stack.pop()
        add(pair)
        cur, flags = pair
        kind = type(cur)
        if kind is attribute:  # `a.b`: its one child, the commonest inner node
            stack.append((cur.value, flags & _INHERITED))
            continue
        how = walk.get(kind, 0)
        if how == 0:
            # `ast.iter_child_nodes`, inlined: this loop meets every node of every function
            fields = child_fields.get(kind)
            if fields is None:
                fields = _child_fields(kind)
            nodes: list[ast.AST] = []
            for name in fields:
                value = getattr(cur, name, None)
                if isinstance(value, list):
                    nodes.extend([v for v in value if isinstance(v, node_type)])
                elif isinstance(value, node_type):
                    nodes.append(value)
            if nodes:
                keep = flags & _INHERITED
                nodes.reverse()
                stack.extend([(c, keep) for c in nodes])
            continue
        if how < 0:
            continue
        keep = flags & _INHERITED
        children: list[tuple[ast.AST, int]]
        if how == 1:
            children = [(cur.value, _AWAITED | keep)]
        elif how == 2:
            children = [(cur.func, keep)]
            children.extend((a, _ARGUMENT | keep) for a in cur.args)
            children.extend((k.value, _ARGUMENT | keep) for k in cur.keywords)
        elif how == 3:
            inner = keep
            if withs is not None:
                withs.append((cur, flags))
                inner = (keep & _COND) | (len(withs) << _CTX_SHIFT)
            children = []
            for item in cur.items:
                children.append((item.context_expr, _ASYNC_CTX | keep))
                if item.optional_vars is not None:
                    children.append((item.optional_vars, keep))
            children.extend((s, inner) for s in cur.body)
        elif how == 4:
            children = [(cur.target, keep), (cur.iter, _ASYNC_CTX | keep)]
            children.extend((s, keep | _COND) for s in (*cur.body, *cur.orelse))
        elif how == 5:
            children = [(cur.test, keep)]
            branches: list[ast.AST] = [*_as_list(cur.body), *_as_list(cur.orelse)]
            children.extend((s, keep | _COND) for s in branches)
        elif how == 6:
            children = [(cur.target, keep), (cur.iter, keep)]
            children.extend((s, keep | _COND) for s in (*cur.body, *cur.orelse))
        elif how == 7:
            fields = vars(cur)
            children = [(s, keep) for s in fields["body"]]
            children.extend((s, keep | _COND) for s in (*fields["handlers"], *fields["orelse"]))
            children.extend((s, keep) for s in fields["finalbody"])
        elif how == 8:
            children = [(cur.subject, keep)]
            children.extend((c, keep | _COND) for c in cur.cases)
        else:
            children = [(cur.values[0], keep)]
            children.extend((v, keep | _COND) for v in cur.values[1:])
        children.reverse()
        stack.extend(children)
    return out


def _as_list(part: ast.AST | list[ast.stmt]) -> list[ast.AST]:
    return list(part) if isinstance(part, list) else [part]


def _object_kind(value: _Value) -> str | None:
    """The kind of object a constructor's value is, for `FileFacts.objects`, or None."""
    if value.kind == "inst":
        kind = normal_type(value.name, "")
    elif value.kind == "unknown" and value.origin:
        kind = normal_type("", value.origin)
    else:
        return None
    return kind if kind in _OBJECT_KINDS else None


def _try_locked(flagged: list[tuple[ast.AST, int]]) -> set[tuple[int, str]]:
    """(id of the `async with`, lock as written) for `if not x.locked(): async with x:`."""
    out: set[tuple[int, str]] = set()
    for n, _ in flagged:
        if not isinstance(n, ast.If):
            continue
        test = n.test
        if not (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
            continue
        call = test.operand
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "locked"
        ):
            continue
        text = _text(call.func.value)
        for stmt in n.body:
            if isinstance(stmt, ast.AsyncWith):
                out.add((id(stmt), text))
    return out


def _awaited_receivers(flagged: list[tuple[ast.AST, int]]) -> set[str]:
    """Names whose methods are awaited in the function: `await session.execute(...)`."""
    out: set[str] = set()
    for n, _ in flagged:
        if isinstance(n, ast.Await) and isinstance(n.value, ast.Call):
            func = n.value.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                out.add(func.value.id)
    return out


def _in_scope(stmts: list[ast.stmt]) -> Iterator[ast.AST]:
    for stmt in stmts:
        yield stmt
        if not isinstance(stmt, (*_FUNCS, ast.ClassDef)):
            yield from iter_scope(stmt)


def _can_be_cancelled_in(stmts: list[ast.stmt]) -> bool:
    """Whether cancellation can arrive in these statements: they await or yield."""
    kinds = (ast.Await, ast.Yield, ast.YieldFrom, ast.AsyncFor, ast.AsyncWith)
    return any(isinstance(n, kinds) for n in _in_scope(stmts))


def _try_parts(
    node: ast.AST,
) -> tuple[list[ast.stmt], list[ast.ExceptHandler], list[ast.stmt]] | None:
    """(body, handlers, finally) of a `try` or a `try`/`except*` (3.11+), else None."""
    if type(node).__name__ not in ("Try", "TryStar"):
        return None
    fields = vars(node)
    body: list[ast.stmt] = fields["body"]
    handlers: list[ast.ExceptHandler] = fields["handlers"]
    final: list[ast.stmt] = fields["finalbody"]
    return body, handlers, final


def _reraises(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Raise) for n in _in_scope(stmts))


def _gives(flagged: list[tuple[ast.AST, int]]) -> tuple[bool, list[ast.expr | None]]:
    """(is a generator, the values it yields if so, else those it returns; None: bare), from
    a function's own nodes (`_walk_flagged`)."""
    returned: list[ast.expr | None] = []
    yielded: list[ast.expr | None] = []
    for n, _ in flagged:
        if type(n) not in _GIVING:
            continue
        if isinstance(n, ast.Return):
            returned.append(n.value)
        elif isinstance(n, ast.Yield):
            yielded.append(n.value)
        elif isinstance(n, ast.YieldFrom):
            yielded.append(n)  # what it yields is not written here: an unknown type
    return (True, yielded) if yielded else (False, returned)


class _FileAnalyzer:
    def __init__(
        self,
        tree: ast.Module,
        lines: list[str],
        module: str,
        is_package: bool,
        kb: Knowledge,
        *,
        index_only: bool = False,
    ) -> None:
        self.tree = tree
        self.lines = lines
        self.module = module
        self.is_package = is_package
        self.top = module.split(".", 1)[0]
        self.kb = kb
        self.classes: dict[str, _Scope] = {}  # dotted class name -> its scope
        self.function_scopes: list[tuple[str, _Scope]] = []  # (qualname, scope)
        self.class_infos: list[ClassInfo] = []
        self.sinks: list[Sink] = []
        # `file_index`: the module's and classes' names only, no function body
        self.index_only = index_only
        self.nonblocking_attrs = frozenset() if index_only else self._self_setup(tree, lines, kb)
        self.root: _Scope | None = None
        # module-level names and class attributes ("lock", "Store._lock") bound to a lock,
        # session factory or engine constructor -> its kind; None once bound to anything else
        self.objects: dict[str, str | None] = {}
        self.instance_attrs: set[str] = set()  # those of them set on `self` in a method
        # every function of the file: dotted -> (its node, the scope it is defined in); its
        # own scope once built; class -> its bases; properties; what each one gives
        self.defs: dict[str, tuple[ast.FunctionDef | ast.AsyncFunctionDef, _Scope]] = {}
        self.def_scopes: dict[str, _Scope] = {}
        self.bases: dict[str, tuple[str, ...]] = {}
        self.properties: set[str] = set()
        self.built = False  # all scopes bound: types found from now on are final
        self._gives_memo: dict[str, tuple[str, _Value] | None] = {}
        self._via_memo: dict[str, _Value | None] = {}
        self._busy: set[str] = set()  # functions whose value is being worked out (recursion)
        self._bodies: dict[int, tuple[bool, list[ast.expr | None]]] = {}  # `_gives`, by node id
        # what each function's body hands on, by node id, for `file_phases`
        self.handed: dict[int, list[ast.expr] | None] = {}

    @staticmethod
    def _self_setup(tree: ast.Module, lines: list[str], kb: Knowledge) -> frozenset[str]:
        """`self.x` objects made non-blocking anywhere in the file (`self._sock.setblocking(0)`)."""
        setup = kb.nonblocking_setup()
        found: set[str] = set()
        # one search of the whole text per name, not one per line: a name has no newline
        text = "\n".join(lines)
        if not any(name in text for name in setup):
            return frozenset()
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                continue
            target = n.func.value
            if n.func.attr not in setup or not isinstance(target, ast.Attribute):
                continue
            if not (isinstance(target.value, ast.Name) and target.value.id == "self"):
                continue
            wanted = setup[n.func.attr]
            arg = n.args[0] if n.args else None
            if wanted is None or (isinstance(arg, ast.Constant) and arg.value == wanted):
                found.add(_text(target))
        return frozenset(found)

    # ---- pass 1: scopes and bindings -------------------------------------------------

    def build(self) -> _Scope:
        root = _Scope("module", self.tree, None)
        self.root = root
        self._fill(root, "")
        self.built = True
        return root

    def _fill(self, scope: _Scope, qualname: str) -> None:
        """Bind the names of one scope, then build the scopes nested in it."""
        nested: list[tuple[ast.AST, str]] = []
        if scope.kind == "function":
            prefix = f"{qualname}.<locals>."
        elif scope.kind == "class":
            prefix = f"{qualname}."
        else:
            prefix = ""
        statements = list(_scope_statements(scope.node))
        # an index reads no class attribute: only the bases of a class nested here can
        # name one (`class Outer: Base = ...; class Inner(Base)`)
        names_only = (
            self.index_only
            and scope.kind == "class"
            and not any(isinstance(n, ast.ClassDef) for n in statements)
        )
        for node in statements:
            if isinstance(node, (*_FUNCS, ast.ClassDef)):
                child = prefix + node.name
                scope.bind(node.name, _Value("ref", f"{self.module}.{child}"))
                if not isinstance(node, ast.ClassDef):
                    self._define(node, f"{self.module}.{child}", scope)
                    if self.index_only:
                        continue
                nested.append((node, child))
            elif names_only:
                continue
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, dotted in import_bindings(node, self.module, self.is_package):
                    scope.bind(name, _Value("ref", dotted))
            elif isinstance(node, ast.Global):
                scope.globals.update(node.names)
            elif isinstance(node, ast.Nonlocal):
                scope.nonlocals.update(node.names)
            else:
                self._bind_statement(node, scope)
        for node, child in nested:
            if isinstance(node, ast.ClassDef):
                self._class_scope(node, child, scope)
            else:
                assert isinstance(node, _FUNCS)
                self._function_scope(node, child, scope)

    def _class_scope(self, node: ast.ClassDef, qualname: str, parent: _Scope) -> None:
        scope = _Scope("class", node, parent)
        dotted = f"{self.module}.{qualname}"
        scope.cls = dotted
        self.classes[dotted] = scope
        bases: list[str] = []
        for base in node.bases:
            value = self._infer(base, parent)
            if value.kind == "ref":
                bases.append(canonical(value.name))
        self.class_infos.append(ClassInfo(qualname, tuple(bases)))
        self.bases[dotted] = tuple(bases)
        self._fill(scope, qualname)

    def _function_scope(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, parent: _Scope
    ) -> None:
        scope = _Scope("function", node, parent)
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        decorators = {_text(d) for d in node.decorator_list}
        first_is_self = parent.kind == "class" and positional and "staticmethod" not in decorators
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults += [*args.defaults, *args.kw_defaults]
        for i, arg in enumerate([*positional, *args.kwonlyargs]):
            if i == 0 and first_is_self:
                scope.cls = parent.cls
                kind = "ref" if "classmethod" in decorators else "inst"
                scope.bind(arg.arg, _Value(kind, parent.cls))
                continue
            scope.bind(arg.arg, self._parameter(arg.annotation, defaults[i], parent))
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                scope.bind(extra.arg, _OPAQUE)
        self.function_scopes.append((qualname, scope))
        self._fill(scope, qualname)
        self.def_scopes[f"{self.module}.{qualname}"] = scope

    def _annotation(self, annotation: ast.expr | None, scope: _Scope, depth: int = 0) -> _Value:
        """An evident type from an annotation: `X`, `"X"`, `X | None`, `Optional[X]`,
        `Union[X, None]`, `Annotated[X, ...]`, nested; `Future[int]` is a `Future`. A union
        of two different types is no evident type."""
        if annotation is None or depth > 20:
            return _UNKNOWN
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value.strip(), mode="eval").body
            except SyntaxError:
                return _UNKNOWN
        if isinstance(annotation, (ast.Name, ast.Attribute)):
            value = self._infer(annotation, scope)
            if value.kind != "ref":
                return _UNKNOWN
            name = canonical(value.name)
            # `typing.IO` is no class name by its spelling, but the catalog knows it whole
            if _is_class_name(value.name) or name in self.kb.types:
                return _Value("inst", name)
            return _UNKNOWN
        options: list[ast.expr]
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            options = [annotation.left, annotation.right]
        elif isinstance(annotation, ast.Subscript):
            outer = self._infer(annotation.value, scope)
            wrapper = canonical(outer.name).rpartition(".") if outer.kind == "ref" else ("", "", "")
            inner = annotation.slice
            args = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
            if wrapper[0] not in ("typing", "typing_extensions"):
                options = [annotation.value]  # a generic: `Future[int]` is a Future
            elif wrapper[2] in ("Optional", "Union"):
                options = args
            elif wrapper[2] == "Annotated":
                options = args[:1]  # the rest is metadata (`Depends(...)`)
            else:
                options = [annotation.value]  # `IO[str]` is an `IO`
        else:
            return _UNKNOWN
        found: set[str] = set()
        for option in options:
            if isinstance(option, ast.Constant) and option.value in (None, "None"):
                continue
            value = self._annotation(option, scope, depth + 1)
            if value.kind != "inst":
                return _UNKNOWN
            found.add(value.name)
        return _Value("inst", found.pop()) if len(found) == 1 else _UNKNOWN

    def _bind_statement(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.Assign):
            shared = len(node.targets) > 1  # `a = b = Lock()`: one object, two names
            for target in node.targets:
                self._bind_target(target, node.value, scope, shared)
        elif isinstance(node, ast.AnnAssign):
            hinted = self._annotation(node.annotation, scope)
            if hinted.kind == "inst":
                self._bind_value(node.target, hinted, scope)
                if node.value is not None:
                    self._track(node.target, node.value, self._infer(node.value, scope), scope)
            elif node.value is not None:
                self._bind_target(node.target, node.value, scope)
        elif isinstance(node, (ast.AugAssign, ast.For)):
            self._bind_value(node.target, _UNKNOWN, scope)
        elif isinstance(node, ast.AsyncFor):
            self._bind_value(node.target, _OPAQUE, scope)
        elif isinstance(node, ast.With):
            for item in node.items:
                if item.optional_vars is not None:
                    self._bind_target(item.optional_vars, item.context_expr, scope)
        elif isinstance(node, ast.AsyncWith):
            for item in node.items:
                if item.optional_vars is not None:
                    value = _OPAQUE
                    if isinstance(item.context_expr, ast.Call):
                        # `async with httpx.AsyncClient() as client`: the client itself
                        entered = self._infer(item.context_expr, scope)
                        if entered.kind == "inst" and entered.name in ASYNC_SELF:
                            value = entered
                    self._bind_value(item.optional_vars, value, scope)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.bind(node.name, _OPAQUE)

    def _bind_target(
        self, target: ast.expr, value: ast.expr, scope: _Scope, shared: bool = False
    ) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self._bind_target(t, v, scope, shared)
                return
            self._bind_value(target, _UNKNOWN, scope)
            return
        inferred = self._infer(value, scope)
        self._bind_value(target, inferred, scope)
        self._track(target, value, inferred, scope, shared)

    def _track(
        self,
        target: ast.expr,
        value: ast.expr,
        inferred: _Value,
        scope: _Scope,
        shared: bool = False,
    ) -> None:
        """Record what a module-level name or class attribute is bound to, for `objects`."""
        key = self._object_key(target, scope)
        if key is None:
            return
        kind = None if shared or not isinstance(value, ast.Call) else _object_kind(inferred)
        if kind is None and isinstance(value, ast.Constant) and value.value is None:
            return  # `lock = None` first, the object later
        old = self.objects.get(key, "")
        self.objects[key] = kind if old in ("", kind) else None

    def _object_key(self, target: ast.expr, scope: _Scope) -> str | None:
        if isinstance(target, ast.Name):
            if scope.kind == "module" or target.id in scope.globals:
                return target.id
            if scope.kind == "class":
                return f"{scope.cls[len(self.module) + 1 :]}.{target.id}"
            return None
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and scope.cls
            and scope.cls in self.classes
        ):
            owner = self._lookup(target.value.id, scope)
            if owner is not None and owner.kind == "inst" and owner.name == scope.cls:
                key = f"{scope.cls[len(self.module) + 1 :]}.{target.attr}"
                self.instance_attrs.add(key)
                return key
        return None

    def _object_value(self, key: str) -> _Value | None:
        """The value a tracked object key is bound to now (after every binding merged)."""
        head, _, attr = key.rpartition(".")
        if not head:
            return self.root.bindings.get(key) if self.root is not None else None
        cls = self.classes.get(f"{self.module}.{head}")
        if cls is None:
            return None
        if key in self.instance_attrs:
            return cls.attrs.get(attr)
        return cls.bindings.get(attr)

    def _object(self, key: str) -> str | None:
        """The kind of a tracked object: bound to one constructor only, and still that."""
        kind = self.objects.get(key)
        if not kind:
            return None
        value = self._object_value(key)
        return kind if value is not None and _object_kind(value) == kind else None

    def _bind_value(self, target: ast.expr, value: _Value, scope: _Scope) -> None:
        if isinstance(target, ast.Name):
            scope.bind(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._bind_value(elt, _UNKNOWN, scope)
        elif isinstance(target, ast.Starred):
            self._bind_value(target.value, _UNKNOWN, scope)
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and scope.cls
            and scope.cls in self.classes
        ):
            # `self.x = ...` in a method types `self.x` in every method of the class
            owner = self._lookup(target.value.id, scope)
            if owner is not None and owner.kind == "inst" and owner.name == scope.cls:
                attrs = self.classes[scope.cls].attrs
                attrs[target.attr] = _merge(attrs.get(target.attr), value)

    # ---- name resolution and types ---------------------------------------------------

    def _lookup(self, name: str, scope: _Scope) -> _Value | None:
        cur: _Scope | None = scope
        if name in scope.globals:
            while cur is not None and cur.parent is not None:
                cur = cur.parent
        first = True
        while cur is not None:
            # a class body's names are not visible in the functions nested in it
            skip = (cur.kind == "class" and not first) or (name in cur.nonlocals)
            if not skip:
                value = cur.bindings.get(name)
                if value is not None:
                    return value
            first = False
            cur = cur.parent
        if name in _BUILTINS:
            return _Value("ref", name)
        return None

    def _infer(self, expr: ast.expr, scope: _Scope, depth: int = 0) -> _Value:
        if depth > 40:
            return _UNKNOWN
        if isinstance(expr, ast.Name):
            value = self._lookup(expr.id, scope)
            if value is None:
                return _UNKNOWN
            return _OPAQUE if value.kind == "none" else self._settled(value)
        if isinstance(expr, ast.Attribute):
            base = self._infer(expr.value, scope, depth + 1)
            return self._settled(self._attribute(base, expr.attr))
        if isinstance(expr, ast.Call):
            return self._call_result(expr, scope, depth)
        if isinstance(expr, ast.Constant):
            return _NONE if expr.value is None else _OPAQUE
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Div):
                left = self._infer(expr.left, scope, depth + 1)
                if left.kind == "inst" and left.name == _PATH:
                    return left
            return _UNKNOWN
        if isinstance(expr, ast.IfExp):
            a = self._infer(expr.body, scope, depth + 1)
            b = self._infer(expr.orelse, scope, depth + 1)
            return _merge(a, b)
        if isinstance(expr, ast.NamedExpr):
            return self._infer(expr.value, scope, depth + 1)
        if isinstance(expr, ast.Subscript):  # `client["app"]["users"]`: pymongo's collections
            base = self._infer(expr.value, scope, depth + 1)
            item = self.kb.returns(f"{base.name}.__getitem__") if base.kind == "inst" else None
            return _Value("inst", item) if item else _UNKNOWN
        opaque = (
            ast.Await,
            ast.JoinedStr,
            ast.List,
            ast.Tuple,
            ast.Dict,
            ast.Set,
            ast.ListComp,
            ast.SetComp,
            ast.DictComp,
            ast.GeneratorExp,
            ast.Lambda,
            ast.Compare,
            ast.BoolOp,
        )
        return _OPAQUE if isinstance(expr, opaque) else _UNKNOWN

    def _attribute(self, base: _Value, attr: str) -> _Value:
        if base.kind == "ref":
            return _Value("ref", f"{base.name}.{attr}")
        if base.kind != "inst":
            return _OPAQUE if base.kind in ("opaque", "method") else _UNKNOWN
        cls = self.classes.get(base.name)
        if cls is not None:
            if attr in cls.attrs:
                return cls.attrs[attr]
            value = cls.bindings.get(attr)
            if value is not None and value.kind == "ref" and value.name.startswith(base.name):
                if value.name in self.properties:  # `self.conn` for `def conn(self) -> X`
                    typed = self._provided(value.name)
                    if typed is not None:
                        return typed
                return _Value("method", value.name)
            if value is not None and value.kind != "ref":
                return value
            inherited = self._inherited(base.name, attr) if value is None else None
            if inherited is not None:
                return inherited
            return _Value("method", f"{base.name}.{attr}")
        full = canonical(f"{base.name}.{attr}")
        if full in _ATTRIBUTE_TYPES:  # an attribute that is an object (`path.parent`)
            return _Value("inst", _ATTRIBUTE_TYPES[full])
        return _Value("method", full)

    def _call_result(self, call: ast.Call, scope: _Scope, depth: int) -> _Value:
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = self._infer(func.value, scope, depth + 1)
            if receiver.kind == "unknown":
                returned = self.kb.unknown_receiver_returns(func.attr)
                if returned:
                    return _Value("inst", returned)
                if receiver.via:  # another file knows the receiver, so the method too
                    return _Value("unknown", via=f"{receiver.via}.{func.attr}()")
                return _UNKNOWN
            callee = self._attribute(receiver, func.attr)
        else:
            callee = self._infer(func, scope, depth + 1)
        return self._returns_of(callee)

    # ---- types one step further: what functions give, FastAPI dependencies -------------

    def _define(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, dotted: str, scope: _Scope
    ) -> None:
        self.defs[dotted] = (node, scope)
        if not self.index_only and any(_text(d) in _PROPERTIES for d in node.decorator_list):
            self.properties.add(dotted)

    def _parameter(
        self, annotation: ast.expr | None, default: ast.expr | None, scope: _Scope
    ) -> _Value:
        """A parameter's type: its annotation, else what the FastAPI dependency it declares
        gives (`db = Depends(get_db)`, `db: Annotated[Session, Depends(get_db)]`)."""
        marks: list[ast.expr] = [default] if default is not None else []
        if (
            isinstance(annotation, ast.Subscript)
            and isinstance(annotation.slice, ast.Tuple)
            and annotation.slice.elts
        ):
            outer = self._infer(annotation.value, scope)
            if outer.kind == "ref" and outer.name in _ANNOTATED:
                annotation, *extra = annotation.slice.elts
                marks.extend(extra)
        value = self._annotation(annotation, scope)
        if value.kind != "inst":
            for mark in marks:
                found = self._depends(mark, scope)
                if found is not None:
                    return found
        return value

    def _depends(self, expr: ast.expr, scope: _Scope) -> _Value | None:
        """What `Depends(get_db)` gives the route: resolved later, when every scope is bound."""
        if not isinstance(expr, ast.Call):
            return None
        callee = self._infer(expr.func, scope)
        if callee.kind != "ref" or canonical(callee.name) not in _DEPENDS:
            return None
        dependency = expr.args[0] if expr.args else None
        for kw in expr.keywords:
            if kw.arg == "dependency":
                dependency = kw.value
        value = self._infer(dependency, scope) if dependency is not None else _UNKNOWN
        if value.kind != "ref":
            return None
        name = canonical(value.name)
        if name in self.classes or _is_class_name(name):
            return _Value("inst", name)  # a class as a dependency: an instance of it
        if not self._project_candidate(name):
            return None
        return _Value("unknown", via=f"Depends({name})")

    def _def_name(self, dotted: str, depth: int = 0) -> str | None:
        """The function of this file `dotted` names, looking through the bases of its class."""
        if dotted in self.defs:
            return dotted
        cls, _, attr = dotted.rpartition(".")
        for base in self.bases.get(cls, ()) if depth < 10 else ():
            found = self._def_name(f"{base}.{attr}", depth + 1)
            if found is not None:
                return found
        return None

    def _inherited(self, cls: str, attr: str, depth: int = 0) -> _Value | None:
        """An object a base class of this file binds to `attr` (`self.db = ...` in its
        `__init__`, `db: Connection` in its body)."""
        for base in self.bases.get(cls, ()) if depth < 10 else ():
            scope = self.classes.get(base)
            if scope is None:
                continue
            value = scope.attrs.get(attr) or scope.bindings.get(attr)
            if value is None:
                value = self._inherited(base, attr, depth + 1)
            if value is not None:
                return value if value.kind == "inst" else None
        return None

    def _gives(self, dotted: str) -> tuple[str, _Value] | None:
        """(how, type) of what the function `dotted` of this file gives (`FileFacts.returns`):
        its annotation says, or else every value it returns (or yields) agrees."""
        if dotted in self._gives_memo:
            return self._gives_memo[dotted]
        found = self.defs.get(dotted)
        if found is None or dotted in self._busy:
            return None
        node, outer = found
        self._busy.add(dotted)
        try:
            result = self._work_out(node, outer, self.def_scopes.get(dotted))
        finally:
            self._busy.discard(dotted)
        if self.built:
            self._gives_memo[dotted] = result
        return result

    def _work_out(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        outer: _Scope,
        inner: _Scope | None,
    ) -> tuple[str, _Value] | None:
        is_async = isinstance(node, ast.AsyncFunctionDef)
        body = self._bodies.get(id(node))
        if body is None:
            body = self._bodies[id(node)] = _gives(_walk_flagged(node))
        generator, values = body
        how = ("call", "await", "yield", "ayield")[2 * generator + is_async]
        annotation = node.returns
        if generator:  # `-> Iterator[Session]`: what it yields is the first argument
            wrapper = (
                self._infer(annotation.value, outer)
                if isinstance(annotation, ast.Subscript)
                else _UNKNOWN
            )
            if wrapper.kind == "ref" and canonical(wrapper.name) in _ITERATORS:
                assert isinstance(annotation, ast.Subscript)
                first = annotation.slice
                if isinstance(first, ast.Tuple):
                    annotation = first.elts[0] if first.elts else None
                else:
                    annotation = first
            else:
                annotation = None
        if annotation is not None:
            typed = self._annotation(annotation, outer)
            if typed.kind == "inst":
                return how, _Value("inst", typed.name)
        if inner is None or not values:
            return None
        merged: _Value | None = None
        for v in values:
            merged = _merge(merged, _NONE if v is None else self._infer(v, inner))
        if merged is None or merged.kind != "inst":
            return None
        return how, _Value("inst", merged.name)

    def _provided(self, dotted: str, depends: bool = False, origin: str = "") -> _Value | None:
        """What a call of the function `dotted` of this file returns (a sync function, not a
        generator), or, with `depends`, what it gives as a FastAPI dependency (what it
        returns, yields, or its coroutine returns)."""
        own = self._def_name(dotted)
        found = self._gives(own) if own is not None else None
        if found is None or not (depends or found[0] == "call"):
            return None
        return _Value("inst", found[1].name, origin=origin)

    def _settled(self, value: _Value) -> _Value:
        """A deferred value (`_Value.via`) this file can resolve, resolved."""
        if value.kind != "unknown" or not value.via or not self.built:
            return value
        if value.via not in self._via_memo:
            self._via_memo[value.via] = None  # a value defined through itself: unknown
            self._via_memo[value.via] = self._follow(value.via)
        return self._via_memo[value.via] or value

    def _follow(self, via: str) -> _Value | None:
        if via.startswith("Depends("):
            close = via.find(")")
            value = self._provided(via[8:close], depends=True)
            rest = via[close + 1 :]
        else:
            close = via.find("()")
            value = self._provided(via[:close])
            rest = via[close + 2 :]
        for method in rest.split("()"):  # ".query().filter()" -> ".query", ".filter", ""
            if not method:
                continue
            if value is None or value.kind != "inst":
                return None
            value = self._returns_of(self._attribute(value, method[1:]))
        return value if value is not None and value.kind == "inst" else None

    def _returns_of(self, callee: _Value) -> _Value:
        """What calling `callee` gives."""
        if callee.kind == "inst":  # an object called: `SessionLocal()` for a sessionmaker
            returned = self.kb.returns(canonical(f"{callee.name}.__call__"))
            return _Value("inst", returned) if returned else _UNKNOWN
        if callee.kind not in ("ref", "method"):
            return _UNKNOWN
        name = canonical(callee.name)
        returned = self.kb.returns(name)
        if returned is not None:
            return _Value("inst", returned)
        if callee.kind == "ref" and (name in self.classes or _is_class_name(name)):
            return _Value("inst", name)
        own = self._def_name(name)
        if own is not None:
            typed = self._provided(own, origin=name)
            if typed is not None:
                return typed
            if self.built:
                return _Value("unknown", origin=name)
        # another file knows (or, while scopes are still being bound, this one later)
        via = f"{name}()" if self._project_candidate(name) else ""
        return _Value("unknown", origin=name, via=via)

    def _iterated(
        self, flagged: list[tuple[ast.AST, int]], scope: _Scope
    ) -> dict[int, tuple[int, int]]:
        """The expressions this function iterates (runs a generator's body for), by id, with
        where the iteration is: `for x in it` (the `for`), comprehensions, `yield from it`,
        `with it`, `list(it)`, `next(it)`, `"".join(it)` (the call), through `enumerate`,
        `zip` & co. A fix that moves the call of a generator to a thread moves nothing:
        the place is the statement, or a call that runs the whole iteration."""
        out: dict[int, tuple[int, int]] = {}
        for n, _ in flagged:
            if type(n) not in _ITERATING:
                continue
            if isinstance(n, ast.For):
                out[id(n.iter)] = (n.lineno, n.col_offset)
            elif isinstance(n, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                for gen in n.generators:
                    if not gen.is_async:
                        out[id(gen.iter)] = (n.lineno, n.col_offset)
            elif isinstance(n, ast.YieldFrom):
                out[id(n.value)] = (n.lineno, n.col_offset)
            elif isinstance(n, ast.With):
                out.update((id(item.context_expr), (n.lineno, n.col_offset)) for item in n.items)
            elif isinstance(n, ast.Call) and n.args:
                func = n.func
                if isinstance(func, ast.Name):
                    value = self._lookup(func.id, scope)
                    name = value.name if value is not None and value.kind == "ref" else ""
                    if name in _CONSUMERS:
                        out[id(n.args[0])] = (n.lineno, n.col_offset)
                    elif name in _PASS_THROUGH and id(n) in out:
                        out.update((id(a), out[id(n)]) for a in n.args)
                elif (
                    isinstance(func, ast.Attribute)
                    and func.attr == "join"
                    and isinstance(func.value, ast.Constant)
                    and isinstance(func.value.value, str)
                ):
                    out[id(n.args[0])] = (n.lineno, n.col_offset)
        return out

    def _iterate(
        self, node: ast.Name, at: tuple[int, int], scope: _Scope, calls: list[Call]
    ) -> None:
        """`g = gen()` ... `for x in g`: the generator's body runs at the `for`."""
        value = self._lookup(node.id, scope)
        if value is None or value.kind != "unknown" or not value.origin:
            return
        name = canonical(value.origin)
        if self._project_candidate(name):
            line, col = at[0], self._col(*at)
            calls.append(Call(name, line, col, name.rpartition(".")[2], iterated=True))

    # ---- pass 2: what each function does ---------------------------------------------

    def _col(self, line: int, col: int) -> int:
        """ast's UTF-8 byte column as a character column."""
        if 1 <= line <= len(self.lines):
            text = self.lines[line - 1]
            if not text.isascii():
                return len(text.encode("utf-8")[:col].decode("utf-8", "replace"))
        return col

    def _project_candidate(self, name: str) -> bool:
        root = name.split(".", 1)[0]
        if root == self.top:
            return True
        return root not in _STDLIB and root not in _BUILTINS

    def analyze(self, qualname: str, scope: _Scope) -> FunctionFacts:
        node = scope.node
        assert isinstance(node, _FUNCS)
        is_async = isinstance(node, ast.AsyncFunctionDef)
        withs: list[tuple[ast.AsyncWith, int]] = []
        flagged = _walk_flagged(node, withs if is_async else None)
        body = self._bodies.get(id(node))
        if body is None:
            body = self._bodies[id(node)] = _gives(flagged)
        is_generator = body[0]  # it yields (`_gives` saw a `yield` of its own)
        self.handed[id(node)] = handed_values([n for n, _ in flagged])
        # the calls, `with`s, loops and comprehensions, in order: all the helpers below
        # look at (a fraction of the nodes, each of which they would test again)
        kinds = _ITERATING
        some = [p for p in flagged if type(p[0]) in kinds]
        events: list[Event] = []
        calls: list[Call] = []
        quiet = self._made_nonblocking(some)
        locks, inside = self._locks(withs, scope, flagged) if withs else ([], {})
        held = self._thread_locks(some, scope)
        awaits: list[Await] = []
        opens: list[tuple[ast.stmt, str, ast.expr, tuple[str, str, str]]] = []
        iterated = self._iterated(some, scope)
        for n, flags in flagged:
            kind = type(n)
            if kind is ast.Call:
                assert isinstance(n, ast.Call)
                if is_async and flags & (_AWAITED | _ASYNC_CTX):
                    self._await(n, flags, scope, inside, awaits)
                else:
                    self._call(n, flags, scope, events, calls, quiet, iterated.get(id(n)))
            elif kind is ast.With:
                assert isinstance(n, ast.With)
                self._with(n, scope, events, calls)
            elif kind is ast.Name and id(n) in iterated:
                assert isinstance(n, ast.Name)
                self._iterate(n, iterated[id(n)], scope, calls)
            elif is_async and kind in _STATEMENTS:
                assert isinstance(n, (ast.Assign, ast.AnnAssign, ast.Expr))
                self._open(n, scope, opens)
        stream_loop: Event | None = None
        if is_async and is_generator:
            events.extend(self._swallowed_cancellation(flagged, scope))
            stream_loop = self._stream_loop(flagged, scope)
        leaks = self._leaks(node, opens, flagged) if opens else ()
        return FunctionFacts(
            qualname=qualname,
            line=node.lineno,
            col=self._col(node.lineno, node.col_offset),
            is_async=is_async,
            is_generator=is_generator,
            events=tuple(events),
            calls=tuple(calls),
            stream_loop=stream_loop,
            locks=tuple(locks),
            awaits=tuple(awaits),
            leaks=leaks,
            held=held,
        )

    # ---- HD601: the locks a coroutine takes, and what it awaits while it holds them ------

    def _owner(self, name: str, scope: _Scope) -> tuple[_Scope | None, _Value | None]:
        """Like `_lookup`, with the scope the name is bound in."""
        cur: _Scope | None = scope
        if name in scope.globals:
            while cur is not None and cur.parent is not None:
                cur = cur.parent
        first = True
        while cur is not None:
            skip = (cur.kind == "class" and not first) or (name in cur.nonlocals)
            if not skip:
                value = cur.bindings.get(name)
                if value is not None:
                    return cur, value
            first = False
            cur = cur.parent
        return None, None

    def _self_class(self, name: str, scope: _Scope) -> str | None:
        """The dotted class when `name` is the `self` of the method it is used in (or around)."""
        owner, value = self._owner(name, scope)
        if owner is None or owner.kind != "function" or not owner.cls:
            return None
        if value != _Value("inst", owner.cls):
            return None
        node = owner.node
        assert isinstance(node, _FUNCS)
        positional = [*node.args.posonlyargs, *node.args.args]
        return owner.cls if positional and positional[0].arg == name else None

    def _lock_of(
        self, expr: ast.expr, scope: _Scope, kinds: frozenset[str] = LOCK_KINDS
    ) -> tuple[str, str, bool] | None:
        """(key, kind, per instance) of a lock entered with `async with`; kind "" for an import.

        Only objects with a stable identity: a module-level name bound once to a lock
        constructor (here, or imported: resolved across files later), or `self.x` where
        the class binds `x` to one (its own class body, or `self.x = ...` in a method).
        `kinds`: the lock types wanted (asyncio's and friends; `THREAD_LOCKS` for HD206).
        """
        if isinstance(expr, ast.Name):
            owner, value = self._owner(expr.id, scope)
            if owner is None or value is None or owner.kind != "module":
                return None
            if value.kind == "ref":
                return (value.name, "", False)
            kind = self._object(expr.id)
            return (f"{self.module}.{expr.id}", kind, False) if kind in kinds else None
        if not isinstance(expr, ast.Attribute):
            return None
        if isinstance(expr.value, ast.Name):
            cls = self._self_class(expr.value.id, scope)
            if cls is not None:
                key = f"{cls[len(self.module) + 1 :]}.{expr.attr}"
                kind = self._object(key)
                if kind not in kinds:
                    return None
                assert kind is not None
                return (f"{cls}.{expr.attr}", kind, key in self.instance_attrs)
        base = self._infer(expr.value, scope)
        if base.kind == "ref":  # `locks.lock_a`, `Store.lock`: resolved across files later
            return (f"{base.name}.{expr.attr}", "", False)
        return None

    def _locks(
        self,
        withs: list[tuple[ast.AsyncWith, int]],
        scope: _Scope,
        flagged: list[tuple[ast.AST, int]],
    ) -> tuple[list[Lock], dict[int, tuple[int, ...]]]:
        """Every lock entered with `async with`, and, per `async with` body, those held in it.

        A try-lock (`if not lock.locked(): async with lock:`) never waits: it is recorded
        as taken under a condition with nothing held, so it is no inner lock of a pair.
        """
        locks: list[Lock] = []
        inside: dict[int, tuple[int, ...]] = {}
        tried = _try_locked(flagged)
        for number, (node, flags) in enumerate(withs, start=1):
            held = inside.get(flags >> _CTX_SHIFT, ())
            for item in node.items:
                found = self._lock_of(item.context_expr, scope)
                if found is None:
                    continue
                key, kind, instance = found
                expr = item.context_expr
                line, col = expr.lineno, self._col(expr.lineno, expr.col_offset)
                text = _text(expr)
                conditional = bool(flags & _COND)
                if (id(node), text) in tried:
                    lock = Lock(key, kind, line, col, text, (), instance, conditional=True)
                else:
                    lock = Lock(key, kind, line, col, text, held, instance, conditional)
                locks.append(lock)
                held = (*held, len(locks) - 1)
            if held:
                inside[number] = held
        return locks, inside

    def _thread_locks(self, flagged: list[tuple[ast.AST, int]], scope: _Scope) -> tuple[Held, ...]:
        """HD206: the `threading` locks of known identity this function takes, and how.

        `with lock:` holds it for its body (`long_body` judges the body alone; the graph
        adds the blocking calls in it); `lock.acquire()` until a `release()` the scan
        does not pair with it: for as long as anyone knows.
        """
        out: list[Held] = []
        for n, _ in flagged:
            if isinstance(n, ast.With):
                col = self._col(n.lineno, n.col_offset)
                end = getattr(n.body[-1], "end_lineno", None) or n.body[-1].lineno
                why: str | None = None
                for item in n.items:
                    found = self._lock_of(item.context_expr, scope, THREAD_LOCKS)
                    if found is None:
                        continue
                    if why is None:
                        why = long_body(n.body)
                    key, kind, _ = found
                    text = safe_unparse(item.context_expr, _TEXT_LIMIT)
                    out.append(Held(key, kind, n.lineno, col, text, n.body[0].lineno, end, why))
            elif (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "acquire"
            ):
                found = self._lock_of(n.func.value, scope, THREAD_LOCKS)
                if found is not None:
                    key, kind, _ = found
                    col = self._col(n.lineno, n.col_offset)
                    out.append(Held(key, kind, n.lineno, col, _text(n.func.value)))
        return tuple(out)

    def _await(
        self,
        node: ast.Call,
        flags: int,
        scope: _Scope,
        inside: dict[int, tuple[int, ...]],
        awaits: list[Await],
    ) -> None:
        """An awaited call that may reach a project coroutine (`await helper()`)."""
        func = node.func
        target: str | None = None
        on_self = False
        if isinstance(func, ast.Attribute):
            receiver = self._infer(func.value, scope)
            if receiver.kind in ("ref", "inst"):
                callee = self._attribute(receiver, func.attr)
                target = callee.name if callee.kind in ("ref", "method") else None
                on_self = isinstance(func.value, ast.Name) and (
                    self._self_class(func.value.id, scope) is not None
                )
        elif isinstance(func, ast.Name):
            value = self._lookup(func.id, scope)
            if value is not None and value.kind in ("ref", "method"):
                target = value.name
        if target is None:
            return
        name = canonical(target)
        if not self._project_candidate(name):
            return
        line, col = node.lineno, self._col(node.lineno, node.col_offset)
        held = inside.get(flags >> _CTX_SHIFT, ())
        awaits.append(
            Await(name, line, col, _text(func), held, on_self, conditional=bool(flags & _COND))
        )

    # ---- HD602: pooled connections a coroutine does not give back --------------------

    def _open(
        self,
        node: ast.stmt,
        scope: _Scope,
        opens: list[tuple[ast.stmt, str, ast.expr, tuple[str, str, str]]],
    ) -> None:
        """`name = await client.send(..., stream=True)`, `session = Session()` and the like."""
        name = ""
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                return
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or node.value is None:
                return
            name, value = node.target.id, node.value
        else:
            assert isinstance(node, ast.Expr)
            value = node.value
        found = self._opens(value, scope)
        if found is not None and (name or found[0] == "httpx"):
            opens.append((node, name, value, found))

    def _opens(self, value: ast.expr, scope: _Scope) -> tuple[str, str, str] | None:
        """(kind, object to confirm across files, its type) when `value` opens a resource."""
        awaited = isinstance(value, ast.Await)
        call = value.value if isinstance(value, ast.Await) else value
        if not isinstance(call, ast.Call):
            return None
        func = call.func
        if awaited:
            if not isinstance(func, ast.Attribute):
                return None
            attr = func.attr
            if attr == "send" and any(
                k.arg == "stream" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in call.keywords
            ):
                kind, wanted = "httpx", HTTPX
            elif attr in AIOHTTP_METHODS:
                kind, wanted = "aiohttp", AIOHTTP
            elif attr == "connect":
                kind, wanted = "connection", ENGINE
            else:
                return None
            receiver = self._infer(func.value, scope)
            if receiver.kind == "ref":
                if "." not in receiver.name or receiver.name.split(".", 1)[0] in _STDLIB:
                    return None  # a module (`aiosqlite.connect`) is no client
                return (kind, receiver.name, wanted)  # an imported client: confirmed later
            if receiver.kind not in ("inst", "unknown"):
                return None
            typ = normal_type(receiver.name if receiver.kind == "inst" else "", receiver.origin)
            return (kind, "", "") if typ == wanted else None
        callee = self._infer(func, scope)
        if callee.kind == "ref":
            name = canonical(callee.name)
            if name in SESSION_CLASSES:
                return ("session", "", "")
            if (
                not call.args
                and "." in name
                and self._project_candidate(name)
                and not name.startswith(f"{self.module}.")
            ):
                return ("session", name, SESSION_FACTORY)  # `SessionLocal()`, imported
            return None
        if normal_type(callee.name if callee.kind == "inst" else "", callee.origin) == (
            SESSION_FACTORY
        ):
            return ("session", "", "")
        return None

    def _leaks(
        self,
        fn: ast.AST,
        opens: list[tuple[ast.stmt, str, ast.expr, tuple[str, str, str]]],
        flagged: list[tuple[ast.AST, int]],
    ) -> tuple[Leak, ...]:
        out: list[Leak] = []
        receivers: set[str] | None = None
        for node, name, value, (kind, confirm, expect) in opens:
            if kind == "session" and confirm:
                # an imported factory, confirmed across files: only for an object used as one
                if receivers is None:
                    receivers = _awaited_receivers(flagged)
                if name not in receivers:
                    continue
            why = release(fn, name, kind) if name else "dropped"
            if why in ("ok", "skip"):
                continue
            line, col = value.lineno, self._col(value.lineno, value.col_offset)
            text = safe_unparse(node, _TEXT_LIMIT)
            out.append(Leak(kind, line, col, text, name, why, confirm, expect))
        return tuple(out)

    def _made_nonblocking(self, flagged: list[tuple[ast.AST, int]]) -> set[str]:
        """Objects (as written) this function makes non-blocking: `sock.setblocking(False)`.

        `self.x` set up anywhere in the file counts everywhere in it (the class's
        `__init__` usually does it), a plain name only in this function.
        """
        found = set(self.nonblocking_attrs)
        setup = self.kb.nonblocking_setup()
        for n, _ in flagged:
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                continue
            if n.func.attr not in setup:
                continue
            wanted = setup[n.func.attr]
            arg = n.args[0] if n.args else None
            if wanted is None or (isinstance(arg, ast.Constant) and arg.value == wanted):
                found.add(_text(n.func.value))
        return found

    def _call(
        self,
        node: ast.Call,
        flags: int,
        scope: _Scope,
        events: list[Event],
        calls: list[Call],
        quiet: set[str],
        iterated: tuple[int, int] | None = None,
    ) -> None:
        if flags & (_AWAITED | _ASYNC_CTX):
            return  # an awaitable: asynchronous by definition
        func = node.func
        target: str | None = None
        unknown_receiver = False
        deferred = ""  # the receiver's type is known to another file: `pool().result()`
        if isinstance(func, ast.Attribute):
            receiver = self._infer(func.value, scope)
            if receiver.kind in ("ref", "inst"):
                callee = self._attribute(receiver, func.attr)
                target = callee.name if callee.kind in ("ref", "method") else None
            elif receiver.kind == "unknown":
                unknown_receiver = True
                deferred = receiver.via
        elif isinstance(func, ast.Name):
            value = self._lookup(func.id, scope)
            if value is not None and value.kind in ("ref", "method"):
                target = value.name
        if target is None and not unknown_receiver:
            return
        line, col = node.lineno, self._col(node.lineno, node.col_offset)
        text = _text(func)
        nonblocking = self._nonblocking(node) or (
            bool(quiet) and isinstance(func, ast.Attribute) and _text(func.value) in quiet
        )
        argument = bool(flags & _ARGUMENT)
        if target is None:
            assert isinstance(func, ast.Attribute)
            if deferred:
                target = f"{deferred}.{func.attr}"
                calls.append(Call(target, line, col, text, argument, nonblocking))
                if iterated is not None:
                    at, at_col = iterated[0], self._col(*iterated)
                    calls.append(Call(target, at, at_col, text, iterated=True))
            code = self.kb.methods.get(func.attr)
            if code is not None and not argument and not nonblocking:
                events.append(Event(code, line, col, f".{func.attr}", text, "method"))
            return
        name = canonical(target)
        code = self.kb.call_code(name)
        if code is not None:
            if code == "HD205" and _kernel_file(node):
                nonblocking = True
            if not nonblocking:
                events.append(Event(code, line, col, name, text, "call"))
        elif self._project_candidate(name):
            calls.append(Call(name, line, col, text, argument, nonblocking))
            if iterated is not None:
                at, at_col = iterated[0], self._col(*iterated)
                calls.append(Call(name, at, at_col, text, iterated=True))
        if name in self.kb.sinks:
            self._sink(node, name, scope)

    def _nonblocking(self, node: ast.Call) -> bool:
        table = self.kb.nonblocking_keywords()
        for kw in node.keywords:
            if kw.arg is not None and kw.arg in table and isinstance(kw.value, ast.Constant):
                wanted = table[kw.arg]
                if kw.value.value == wanted and not isinstance(kw.value.value, str):
                    return True
        flags = self.kb.nonblocking_flags()
        for arg in node.args:
            if isinstance(arg, ast.Constant) and arg.value is False:
                return True
            if _names_flag(arg, flags):
                return True
        return False

    def _with(self, node: ast.With, scope: _Scope, events: list[Event], calls: list[Call]) -> None:
        """`with x:` calls `x.__enter__()` and `x.__exit__()` where the `with` is."""
        line, col = node.lineno, self._col(node.lineno, node.col_offset)
        for item in node.items:
            value = self._infer(item.context_expr, scope)
            if value.kind not in ("inst", "ref"):
                continue
            header = "with " + safe_unparse(item.context_expr, _TEXT_LIMIT)
            if item.optional_vars is not None:
                header += " as " + safe_unparse(item.optional_vars, 40)
            for method in ("__enter__", "__exit__"):
                name = canonical(f"{value.name}.{method}")
                code = self.kb.call_code(name) if value.kind == "inst" else None
                if code is not None:
                    events.append(Event(code, line, col, name, header, "with"))
                elif self._project_candidate(name) and (
                    value.kind == "ref" or value.name in self.classes
                ):
                    calls.append(Call(name, line, col, header))

    def _sink(self, node: ast.Call, sink: str, scope: _Scope) -> None:
        content: ast.expr | None = node.args[0] if node.args else None
        for kw in node.keywords:
            if kw.arg == "content":
                content = kw.value
        generator = ""
        if isinstance(content, ast.Call):
            callee = self._infer(content.func, scope)
            if callee.kind in ("ref", "method"):
                generator = callee.name
        elif isinstance(content, ast.Name):
            value = self._lookup(content.id, scope)
            if value is not None:
                generator = value.origin
        if generator:
            line, col = node.lineno, self._col(node.lineno, node.col_offset)
            self.sinks.append(Sink(canonical(generator), sink, line, col))

    def _catches_cancellation(self, kind: ast.expr | None, scope: _Scope) -> str | None:
        """How the handler's exception reads when it catches cancellation, else None."""
        if kind is None:
            return "except:"
        if isinstance(kind, ast.Tuple):
            for elt in kind.elts:
                if self._catches_cancellation(elt, scope):
                    return f"except {safe_unparse(kind, 60)}:"
            return None
        if isinstance(kind, ast.Call):  # anyio.get_cancelled_exc_class()
            callee = self._infer(kind.func, scope)
            if callee.kind == "ref" and callee.name.endswith("get_cancelled_exc_class"):
                return f"except {safe_unparse(kind, 60)}:"
            return None
        value = self._infer(kind, scope)
        if value.kind == "ref" and canonical(value.name) in self.kb.cancel_names:
            return f"except {safe_unparse(kind, 60)}:"
        return None

    def _cleans_up(self, handlers: list[ast.ExceptHandler], scope: _Scope) -> bool:
        """A handler that catches cancellation and re-raises it: cleanup on disconnect."""
        return any(
            self._catches_cancellation(h.type, scope) and _reraises(h.body) for h in handlers
        )

    def _swallowed_cancellation(
        self, flagged: list[tuple[ast.AST, int]], scope: _Scope
    ) -> list[Event]:
        out: list[Event] = []
        for n, _ in flagged:
            parts = _try_parts(n)
            if parts is not None:
                body, handlers, _ = parts
                if not _can_be_cancelled_in(body):
                    continue
                for handler in handlers:
                    text = self._catches_cancellation(handler.type, scope)
                    if text and not _reraises(handler.body):
                        line = handler.lineno
                        col = self._col(line, handler.col_offset)
                        out.append(Event("HD302", line, col, text, text, "except"))
            elif isinstance(n, ast.With) and _can_be_cancelled_in(n.body):
                for item in n.items:
                    expr = item.context_expr
                    if not isinstance(expr, ast.Call):
                        continue
                    callee = self._infer(expr.func, scope)
                    if callee.kind != "ref" or canonical(callee.name) != "contextlib.suppress":
                        continue
                    if any(self._catches_cancellation(a, scope) for a in expr.args):
                        text = "with " + safe_unparse(expr, 60)
                        col = self._col(n.lineno, n.col_offset)
                        out.append(Event("HD302", n.lineno, col, text, text, "with"))
        return out

    def _stream_loop(self, flagged: list[tuple[ast.AST, int]], scope: _Scope) -> Event | None:
        """The first loop that yields, in a generator with no sign of disconnect handling.

        Signs: a name or string mentioning a guard (`request.is_disconnected()`,
        "http.disconnect"), or the loop sitting in a `try` whose `finally` (or
        re-raising cancellation handler) cleans up when the server cancels the
        generator on disconnect.
        """
        guards = self.kb.guards
        cleaned: set[int] = set()
        for n, _ in flagged:
            parts = _try_parts(n)
            if parts is not None and (parts[2] or self._cleans_up(parts[1], scope)):
                cleaned.update(id(b) for b in _in_scope(parts[0]))
        loop: ast.While | ast.For | None = None
        for n, _ in flagged:
            word = ""
            if isinstance(n, ast.Name):
                word = n.id
            elif isinstance(n, ast.Attribute):
                word = n.attr
            elif isinstance(n, ast.Constant) and isinstance(n.value, str):
                word = n.value
            if word and any(g in word.lower() for g in guards):
                return None
            # `async for x in source: yield x` forwards a stream: the source owns the work
            if loop is None and isinstance(n, (ast.While, ast.For)):
                body = list(_in_scope(n.body))
                if not any(isinstance(b, (ast.Yield, ast.YieldFrom)) for b in body):
                    continue
                if isinstance(n, ast.For) and not any(isinstance(b, ast.Await) for b in body):
                    continue  # a finite loop over data at hand: it ends soon anyway
                if id(n) in cleaned:
                    continue
                loop = n
        if loop is None:
            return None
        keyword = "while" if isinstance(loop, ast.While) else "for"
        head = loop.test if isinstance(loop, ast.While) else loop.iter
        text = f"{keyword} {safe_unparse(head, 60)}"
        line = loop.lineno
        return Event("HD301", line, self._col(line, loop.col_offset), text, text, "stream")

    def _returns(self) -> tuple[tuple[str, str, str], ...]:
        """`FileFacts.returns`: what the functions of this file give, for other files."""
        out: list[tuple[str, str, str]] = []
        skip = len(self.module) + 1
        for dotted in self.defs:
            found = self._gives(dotted)
            if found is not None:
                out.append((dotted[skip:], found[0], found[1].name))
        return tuple(out)

    def facts(self, root: _Scope) -> FileFacts:
        functions: list[FunctionFacts] = []
        quiet: list[str] = []
        for qualname, scope in self.function_scopes:
            fn = self.analyze(qualname, scope)
            if (
                fn.events
                or fn.calls
                or fn.stream_loop
                or fn.locks
                or fn.awaits
                or fn.leaks
                or fn.held
            ):
                functions.append(fn)
            else:
                quiet.append(qualname)
        aliases, instances = self._module_names(root)
        return FileFacts(
            module=self.module,
            functions=tuple(functions),
            quiet=tuple(quiet),
            classes=tuple(self.class_infos),
            aliases=tuple(aliases),
            instances=tuple(instances),
            sinks=tuple(self.sinks),
            returns=self._returns(),
            lines=len(self.lines),
            objects=tuple(
                (key, kind)
                for key in self.objects
                if key not in self.instance_attrs and (kind := self._object(key)) is not None
            ),
            phases=file_phases(self.tree, self.module, self._phase_dotted(root), self.handed),
        )

    def _module_names(
        self, root: _Scope
    ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """(`FileFacts.aliases`, `FileFacts.instances`): the module's imported names and
        re-exports, and its names bound to an object of a known type."""
        aliases: list[tuple[str, str]] = []
        instances: list[tuple[str, str]] = []
        for name, value in root.bindings.items():
            if value.kind == "ref" and value.name != f"{self.module}.{name}":
                aliases.append((name, value.name))
            elif value.kind == "inst":
                instances.append((name, value.name))
        return tuple(aliases), tuple(instances)

    def index(self, root: _Scope, lines: int) -> FileFacts:
        """The deferred facts of `file_index` (after `build` in `index_only` mode)."""
        aliases, instances = self._module_names(root)
        skip = len(self.module) + 1
        return deferred_facts(
            self.module,
            lines,
            defs=tuple(dotted[skip:] for dotted in self.defs),
            classes=tuple(self.class_infos),
            aliases=aliases,
            instances=instances,
        )

    def _phase_dotted(self, root: _Scope) -> Callable[[ast.expr, ast.AST | None], str | None]:
        """For `startup.file_phases`: the callable a name refers to where it is written."""
        scopes = {id(scope.node): scope for _, scope in self.function_scopes}

        def dotted(expr: ast.expr, where: ast.AST | None) -> str | None:
            scope = scopes.get(id(where), root) if where is not None else root
            value = self._infer(expr, scope)
            return canonical(value.name) if value.kind in ("ref", "method") else None

        return dotted


def file_facts(
    tree: ast.Module, lines: list[str], module: str, is_package: bool, knowledge: Knowledge
) -> FileFacts:
    """The facts of one parsed file (without its suppression comments).

    May raise RecursionError on absurdly deep code; the caller reports the file.
    """
    analyzer = _FileAnalyzer(tree, lines, module, is_package, knowledge)
    root = analyzer.build()
    return analyzer.facts(root)


def file_index(
    tree: ast.Module, lines: int, module: str, is_package: bool, knowledge: Knowledge
) -> FileFacts:
    """The deferred facts of one parsed file (`FileFacts.deferred`): the names the search
    can look up in it without its functions' facts (its functions, classes and their
    bases, imports, objects of known type), read from the module and class bodies alone.
    They are the same as `file_facts` gives for these; a lookup that ends at a function
    asks for the whole analysis.

    `lines`: how many the file has (`files.line_count`); an index reads none of them.

    May raise RecursionError on absurdly deep code; the caller reports the file.
    """
    analyzer = _FileAnalyzer(tree, [], module, is_package, knowledge, index_only=True)
    return analyzer.index(analyzer.build(), lines)


# Files the kernel answers from memory: reading /proc or /sys, or writing /dev/null, never
# waits for a disk, so such a call is no HD205 (a watchdog reading /proc/self/... is fine).
_KERNEL_FILES = ("/proc/", "/sys/")
_NULL_DEVICE = "/dev/null"


def _kernel_file(node: ast.Call) -> bool:
    """The call's path (first argument, or `file=`/`path=`) is literally in /proc, /sys or
    /dev/null: a string, or an f-string whose text starts there (`f"/proc/{pid}/stat"`)."""
    arg: ast.expr | None = node.args[0] if node.args else None
    if arg is None:
        arg = next((kw.value for kw in node.keywords if kw.arg in ("file", "path")), None)
    lead: object = None
    if isinstance(arg, ast.Constant):
        lead = arg.value
    elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        lead = arg.values[0].value
    if not isinstance(lead, str):
        return False
    if isinstance(arg, ast.Constant) and lead == _NULL_DEVICE:
        return True
    return lead.startswith(_KERNEL_FILES)
