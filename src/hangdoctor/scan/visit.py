"""One file's facts: what blocks in each function, and whom each function calls.

Two passes over the AST. The first builds the scopes (module, classes,
functions) and what each name is bound to: an import (`ref`), an object of a
type evident from its assignment (`inst`: `s = requests.Session()`, `with
open(p) as f`, a parameter annotated `lock: threading.Lock`, `self._pool =
ThreadPoolExecutor()` anywhere in the class), or something unknown. The second
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
from collections.abc import Iterator
from dataclasses import dataclass

from hangdoctor.scan.facts import Call, ClassInfo, Event, FileFacts, FunctionFacts, Sink
from hangdoctor.scan.knowledge import Knowledge, canonical
from hangdoctor.scan.names import dotted_parts, import_bindings, iter_scope, safe_unparse

__all__ = ["file_facts"]

_BUILTINS = frozenset(dir(builtins))
_STDLIB = frozenset(sys.stdlib_module_names)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_PATH = "pathlib.Path"
_ATTRIBUTE_TYPES = {f"{_PATH}.parent": _PATH}
_TEXT_LIMIT = 80

# flags of a node, given by its parent
_AWAITED = 1  # the value of an `await`
_ASYNC_CTX = 2  # an `async with` item or an `async for` iterable
_ARGUMENT = 4  # an argument of a call


@dataclass(frozen=True)
class _Value:
    """What a name or expression is, as far as the file shows."""

    kind: str  # "ref" | "method" | "inst" | "unknown" | "opaque" | "none"
    name: str = ""  # ref/method: dotted callable; inst: dotted type
    origin: str = ""  # a value a call returned: the callee (links `g = gen()` to `gen`)


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


def _children(node: ast.AST) -> list[ast.AST]:
    """`ast.iter_child_nodes`, faster: no context or operator nodes, no generator."""
    out: list[ast.AST] = []
    for name in _child_fields(type(node)):
        value = getattr(node, name, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def _walk_flagged(node: ast.AST) -> Iterator[tuple[ast.AST, int]]:
    """Like `_scope_body`, with each node's flags from its parent (awaited, argument)."""
    body: list[ast.stmt] = getattr(node, "body", [])
    stack: list[tuple[ast.AST, int]] = [(s, 0) for s in reversed(body)]
    while stack:
        cur, flags = stack.pop()
        yield cur, flags
        if isinstance(cur, (*_FUNCS, ast.ClassDef, ast.Lambda)):
            continue
        children: list[tuple[ast.AST, int]] = []
        if isinstance(cur, ast.Await):
            children.append((cur.value, _AWAITED))
        elif isinstance(cur, ast.Call):
            children.append((cur.func, 0))
            children.extend((a, _ARGUMENT) for a in cur.args)
            children.extend((k.value, _ARGUMENT) for k in cur.keywords)
        elif isinstance(cur, ast.AsyncWith):
            for item in cur.items:
                children.append((item.context_expr, _ASYNC_CTX))
                if item.optional_vars is not None:
                    children.append((item.optional_vars, 0))
            children.extend((s, 0) for s in cur.body)
        elif isinstance(cur, ast.AsyncFor):
            children.append((cur.target, 0))
            children.append((cur.iter, _ASYNC_CTX))
            children.extend((s, 0) for s in (*cur.body, *cur.orelse))
        else:
            children.extend((c, 0) for c in _children(cur))
        stack.extend(reversed(children))


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


class _FileAnalyzer:
    def __init__(
        self, tree: ast.Module, lines: list[str], module: str, is_package: bool, kb: Knowledge
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
        self.nonblocking_attrs = self._self_setup(tree, lines, kb)

    @staticmethod
    def _self_setup(tree: ast.Module, lines: list[str], kb: Knowledge) -> frozenset[str]:
        """`self.x` objects made non-blocking anywhere in the file (`self._sock.setblocking(0)`)."""
        setup = kb.nonblocking_setup()
        found: set[str] = set()
        if not any(name in line for line in lines for name in setup):
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
        self._fill(root, "")
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
        for node in _scope_statements(scope.node):
            if isinstance(node, (*_FUNCS, ast.ClassDef)):
                child = prefix + node.name
                scope.bind(node.name, _Value("ref", f"{self.module}.{child}"))
                nested.append((node, child))
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
        self._fill(scope, qualname)

    def _function_scope(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, parent: _Scope
    ) -> None:
        scope = _Scope("function", node, parent)
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        decorators = {_text(d) for d in node.decorator_list}
        first_is_self = parent.kind == "class" and positional and "staticmethod" not in decorators
        for i, arg in enumerate([*positional, *args.kwonlyargs]):
            if i == 0 and first_is_self:
                scope.cls = parent.cls
                kind = "ref" if "classmethod" in decorators else "inst"
                scope.bind(arg.arg, _Value(kind, parent.cls))
                continue
            scope.bind(arg.arg, self._annotation(arg.annotation, parent))
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                scope.bind(extra.arg, _OPAQUE)
        self.function_scopes.append((qualname, scope))
        self._fill(scope, qualname)

    def _annotation(self, annotation: ast.expr | None, scope: _Scope) -> _Value:
        """An evident type from a parameter's annotation (`X`, `X | None`, `Optional[X]`)."""
        if annotation is None:
            return _UNKNOWN
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return _UNKNOWN
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            sides = [annotation.left, annotation.right]
            real = [s for s in sides if not (isinstance(s, ast.Constant) and s.value is None)]
            if len(real) != 1:
                return _UNKNOWN
            annotation = real[0]
        if isinstance(annotation, ast.Subscript):
            outer = self._infer(annotation.value, scope)
            if outer.kind == "ref" and outer.name in ("typing.Optional", "Optional"):
                annotation = annotation.slice
            else:
                annotation = annotation.value  # Future[int] is a Future
        if isinstance(annotation, (ast.Name, ast.Attribute)):
            value = self._infer(annotation, scope)
            if value.kind == "ref" and _is_class_name(value.name):
                return _Value("inst", canonical(value.name))
        return _UNKNOWN

    def _bind_statement(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind_target(target, node.value, scope)
        elif isinstance(node, ast.AnnAssign):
            hinted = self._annotation(node.annotation, scope)
            if hinted.kind == "inst":
                self._bind_value(node.target, hinted, scope)
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
                    self._bind_value(item.optional_vars, _OPAQUE, scope)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.bind(node.name, _OPAQUE)

    def _bind_target(self, target: ast.expr, value: ast.expr, scope: _Scope) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self._bind_target(t, v, scope)
                return
            self._bind_value(target, _UNKNOWN, scope)
            return
        self._bind_value(target, self._infer(value, scope), scope)

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
            return _OPAQUE if value.kind == "none" else value
        if isinstance(expr, ast.Attribute):
            return self._attribute(self._infer(expr.value, scope, depth + 1), expr.attr)
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
                return _Value("method", value.name)
            if value is not None and value.kind != "ref":
                return value
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
                return _Value("inst", returned) if returned else _UNKNOWN
            callee = self._attribute(receiver, func.attr)
        else:
            callee = self._infer(func, scope, depth + 1)
        if callee.kind not in ("ref", "method"):
            return _UNKNOWN
        name = canonical(callee.name)
        returned = self.kb.returns(name)
        if returned is not None:
            return _Value("inst", returned)
        if callee.kind == "ref" and (name in self.classes or _is_class_name(name)):
            return _Value("inst", name)
        return _Value("unknown", origin=name)

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
        flagged = list(_walk_flagged(node))
        is_generator = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n, _ in flagged)
        events: list[Event] = []
        calls: list[Call] = []
        quiet = self._made_nonblocking(flagged)
        for n, flags in flagged:
            if isinstance(n, ast.Call):
                self._call(n, flags, scope, events, calls, quiet)
            elif isinstance(n, ast.With):
                self._with(n, scope, events, calls)
        stream_loop: Event | None = None
        if is_async and is_generator:
            events.extend(self._swallowed_cancellation(flagged, scope))
            stream_loop = self._stream_loop(flagged, scope)
        return FunctionFacts(
            qualname=qualname,
            line=node.lineno,
            col=self._col(node.lineno, node.col_offset),
            is_async=is_async,
            is_generator=is_generator,
            events=tuple(events),
            calls=tuple(calls),
            stream_loop=stream_loop,
        )

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
    ) -> None:
        if flags & (_AWAITED | _ASYNC_CTX):
            return  # an awaitable: asynchronous by definition
        func = node.func
        target: str | None = None
        unknown_receiver = False
        if isinstance(func, ast.Attribute):
            receiver = self._infer(func.value, scope)
            if receiver.kind in ("ref", "inst"):
                callee = self._attribute(receiver, func.attr)
                target = callee.name if callee.kind in ("ref", "method") else None
            elif receiver.kind == "unknown":
                unknown_receiver = True
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
            code = self.kb.methods.get(func.attr)
            if code is not None and not argument and not nonblocking:
                events.append(Event(code, line, col, f".{func.attr}", text, "method"))
            return
        name = canonical(target)
        code = self.kb.call_code(name)
        if code is not None:
            if not nonblocking:
                events.append(Event(code, line, col, name, text, "call"))
        elif self._project_candidate(name):
            calls.append(Call(name, line, col, text, argument, nonblocking))
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

    def facts(self, root: _Scope) -> FileFacts:
        functions: list[FunctionFacts] = []
        quiet: list[str] = []
        for qualname, scope in self.function_scopes:
            fn = self.analyze(qualname, scope)
            if fn.events or fn.calls or fn.stream_loop:
                functions.append(fn)
            else:
                quiet.append(qualname)
        aliases: list[tuple[str, str]] = []
        instances: list[tuple[str, str]] = []
        for name, value in root.bindings.items():
            if value.kind == "ref" and value.name != f"{self.module}.{name}":
                aliases.append((name, value.name))
            elif value.kind == "inst":
                instances.append((name, value.name))
        return FileFacts(
            module=self.module,
            functions=tuple(functions),
            quiet=tuple(quiet),
            classes=tuple(self.class_infos),
            aliases=tuple(aliases),
            instances=tuple(instances),
            sinks=tuple(self.sinks),
            lines=len(self.lines),
        )


def file_facts(
    tree: ast.Module, lines: list[str], module: str, is_package: bool, knowledge: Knowledge
) -> FileFacts:
    """The facts of one parsed file (without its suppression comments).

    May raise RecursionError on absurdly deep code; the caller reports the file.
    """
    analyzer = _FileAnalyzer(tree, lines, module, is_package, knowledge)
    root = analyzer.build()
    return analyzer.facts(root)
