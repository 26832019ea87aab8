"""Read the target's source: the line a frame sits on, the `with` around it, the calls on it.

A waiting C function (`time.sleep`, `Lock.acquire`, `sqlite3` calls) leaves no
Python frame of its own: the user's frame is on top, and its source line says
what it waits on. Files are read through `/proc/PID/root` so a containerised
target's paths resolve; saved dumps can be pointed at a checkout with
`source_root`.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path

from hangdoctor.analysis.frames import display_path

__all__ = ["CallAtLine", "SourceReader"]

_MAX_BYTES = 5 * 1024 * 1024  # never slurp a huge generated file during an outage
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class CallAtLine:
    """One call expression on a source line.

    `qualname` is the callable resolved through the file's imports
    (`time.sleep`, `urllib.request.urlopen`, `open`) and through objects the
    module builds at import time (`_lock = threading.Lock()` makes
    `_lock.acquire` `threading.Lock.acquire`), or None when the callee is a
    method on an object of unknown type; `attr` is the last name (`sleep`,
    `acquire`).
    """

    qualname: str | None
    attr: str
    text: str = ""  # the callee as written: "_jobs_lock.acquire", "urlopen"
    on_object: bool = False  # a method on an object (known type or not), not a module function


@dataclass
class _Parsed:
    lines: list[str]
    tree: ast.Module | None
    imports: dict[str, str]
    instances: dict[str, str]  # module-level name -> the class or factory that built it


class SourceReader:
    """Reads and caches source files of one target process."""

    def __init__(
        self, root: str | None = None, source_root: str | None = None, cwd: str | None = None
    ) -> None:
        self._root = root
        self._source_root = source_root
        self.cwd = cwd
        self._cache: dict[str, _Parsed | None] = {}

    def display(self, file: str) -> str:
        """`file` relative to the target's working directory when it lies below it."""
        return display_path(file, self.cwd)

    def locate(self, file: str) -> Path | None:
        """Where `file` (as the target saw it) can be read from here."""
        candidates: list[Path] = []
        if self._source_root:
            base = Path(self._source_root)
            parts = Path(file).parts
            # a saved dump from another machine: match the longest tail of the path
            for i in range(len(parts)):
                tail = parts[i:]
                if tail and tail[0] != "/":
                    candidates.append(base.joinpath(*tail))
        if self._root and os.path.isabs(file):
            candidates.append(Path(self._root + file))
        candidates.append(Path(file))
        for c in candidates:
            try:
                if c.is_file():
                    return c
            except OSError:
                continue
        return None

    def _parsed(self, file: str) -> _Parsed | None:
        if file in self._cache:
            return self._cache[file]
        parsed: _Parsed | None = None
        path = self.locate(file)
        if path is not None:
            parsed = _parse(path)
        self._cache[file] = parsed
        return parsed

    def tree(self, file: str) -> ast.Module | None:
        """The file's syntax tree, None when it cannot be read or parsed."""
        parsed = self._parsed(file)
        return None if parsed is None else parsed.tree

    def line(self, file: str, line: int) -> str | None:
        parsed = self._parsed(file)
        if parsed is None or not 1 <= line <= len(parsed.lines):
            return None
        return parsed.lines[line - 1].rstrip("\r\n")

    def enclosing_with(self, file: str, line: int, hint: str = "Executor") -> int | None:
        """Line of the innermost `with` around `line`, preferring one that mentions `hint`."""
        parsed = self._parsed(file)
        if parsed is None or parsed.tree is None:
            return None
        best: ast.With | ast.AsyncWith | None = None
        best_hinted: ast.With | ast.AsyncWith | None = None
        for node in ast.walk(parsed.tree):
            if not isinstance(node, (ast.With, ast.AsyncWith)):
                continue
            end = node.end_lineno or node.lineno
            if not node.lineno <= line <= end:
                continue
            if best is None or node.lineno >= best.lineno:
                best = node
            if any(hint in ast.unparse(item.context_expr) for item in node.items) and (
                best_hinted is None or node.lineno >= best_hinted.lineno
            ):
                best_hinted = node
        chosen = best_hinted or best
        return chosen.lineno if chosen else None

    def is_async_def(self, file: str, line: int) -> bool | None:
        """Whether the function holding `line` is an `async def`; None when unknown."""
        tree = self.tree(file)
        func = None if tree is None else _function_at(tree, line)
        return None if func is None else isinstance(func, ast.AsyncFunctionDef)

    def calls_at(self, file: str, line: int) -> tuple[CallAtLine, ...]:
        """Calls in the statement at `line`, innermost statement first, resolved via imports."""
        parsed = self._parsed(file)
        if parsed is None:
            return ()
        if parsed.tree is None:
            return _calls_from_text(self.line(file, line) or "", parsed.imports)
        stmt = _statement_at(parsed.tree, line)
        if stmt is None:
            return ()
        # a name the function binds itself (argument, assignment) hides the module's
        shadowed = _local_names(parsed.tree, line)
        imports = {k: v for k, v in parsed.imports.items() if k not in shadowed}
        instances = {k: v for k, v in parsed.instances.items() if k not in shadowed}
        found: list[tuple[int, CallAtLine]] = []
        for node in _walk_no_nested_defs(stmt):
            if isinstance(node, ast.Call):
                start, end = node.lineno, node.end_lineno or node.lineno
                # calls on the sampled line first, then the rest of the statement
                rank = 0 if start <= line <= end else 1
                found.append((rank, _resolve(node.func, imports, instances)))
        found.sort(key=lambda x: x[0])
        return tuple(c for _, c in found)

    def entered_at(self, file: str, line: int) -> tuple[CallAtLine, ...]:
        """Objects a plain `with` on `line` enters without calling anything (`with lock:`).

        Each is reported as its `__enter__`, resolved like a call; `text` is the
        expression. A thread blocked on such a line with no Python frame above it
        waits in a C-level `__enter__`: a lock's acquire.
        """
        parsed = self._parsed(file)
        if parsed is None or parsed.tree is None:
            return ()
        node = _with_header_at(parsed.tree, line)
        if node is None:
            return ()
        shadowed = _local_names(parsed.tree, line)
        imports = {k: v for k, v in parsed.imports.items() if k not in shadowed}
        instances = {k: v for k, v in parsed.instances.items() if k not in shadowed}
        out: list[CallAtLine] = []
        for item in node.items:
            expr = item.context_expr
            if isinstance(expr, ast.Call):
                continue
            enter = ast.Attribute(value=expr, attr="__enter__", ctx=ast.Load())
            resolved = _resolve(enter, imports, instances)
            out.append(replace(resolved, text=_unparse(expr), on_object=True))
        return tuple(out)


def _parse(path: Path) -> _Parsed | None:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_BYTES + 1)
    except OSError:
        return None
    if len(raw) > _MAX_BYTES or b"\0" in raw:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        text = raw.decode(encoding, errors="replace")
    except (SyntaxError, LookupError):
        text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    try:
        tree: ast.Module | None = ast.parse(text)
    except (SyntaxError, ValueError):
        tree = None
    imports = _imports(tree) if tree is not None else {}
    instances = _instances(tree, imports) if tree is not None else {}
    return _Parsed(lines=lines, tree=tree, imports=imports, instances=instances)


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin for every import in the file (any scope)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".", 1)[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _instances(tree: ast.Module, imports: dict[str, str]) -> dict[str, str]:
    """Module-level names bound once to a call of an imported callable: `_pool = Executor()`."""
    built: dict[str, str] = {}
    seen: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            if target.id in seen or target.id in imports:
                built.pop(target.id, None)  # bound twice: its type is not known
                continue
            seen.add(target.id)
            if isinstance(value, ast.Call):
                callee = _resolve(value.func, imports, {})
                if callee.qualname is not None:
                    built[target.id] = callee.qualname
    return built


def _function_at(tree: ast.Module, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The innermost function whose body holds `line`."""
    func: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end and (func is None or node.lineno >= func.lineno):
                func = node
    return func


def _local_names(tree: ast.Module, line: int) -> set[str]:
    """Names the innermost function around `line` binds: its arguments and assignments."""
    func = _function_at(tree, line)
    if func is None:
        return set()
    args = func.args
    names = {
        a.arg
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        if a is not None
    }
    declared_global: set[str] = set()
    for node in _walk_no_nested_defs(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
    return names - declared_global


def _dotted(expr: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return parts[::-1]
    if isinstance(expr, ast.Call):  # requests.Session().get -> requests.Session.get
        inner = _dotted(expr.func)
        if inner is not None:
            return inner + parts[::-1]
    return None


def _resolve(func: ast.expr, imports: dict[str, str], instances: dict[str, str]) -> CallAtLine:
    parts = _dotted(func)
    attr = func.attr if isinstance(func, ast.Attribute) else (parts[-1] if parts else "")
    text = _unparse(func)
    method = isinstance(func, ast.Attribute)
    if not parts:
        return CallAtLine(None, attr, text, on_object=method)
    head = parts[0]
    if head in imports:
        return CallAtLine(".".join([imports[head], *parts[1:]]), attr, text)
    if head in instances and len(parts) > 1:
        return CallAtLine(".".join([instances[head], *parts[1:]]), attr, text, on_object=True)
    if len(parts) == 1 and head in _BUILTINS:
        return CallAtLine(head, attr, text)
    return CallAtLine(None, attr, text, on_object=method)


def _unparse(expr: ast.expr) -> str:
    try:
        return ast.unparse(expr)
    except (ValueError, RecursionError):
        return ""


def _statement_at(tree: ast.Module, line: int) -> ast.stmt | None:
    """The innermost simple statement (or compound header) spanning `line`."""
    best: ast.stmt | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        end = node.end_lineno or node.lineno
        if node.lineno <= line <= end and (best is None or node.lineno >= best.lineno):
            best = node
    if best is None:
        return None
    body = getattr(best, "body", None)
    if isinstance(body, list) and body:
        # a compound statement: keep only its header (the test of an `if`, a `with` item)
        header = _header_of(best)
        return header or best
    return best


def _with_header_at(tree: ast.Module, line: int) -> ast.With | None:
    """The innermost (sync) `with` whose header, not body, spans `line`."""
    best: ast.With | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.With):
            continue
        end = max((i.context_expr.end_lineno or node.lineno) for i in node.items)
        if node.lineno <= line <= end and (best is None or node.lineno >= best.lineno):
            best = node
    return best


def _header_of(node: ast.stmt) -> ast.stmt | None:
    exprs: list[ast.expr] = []
    if isinstance(node, (ast.With, ast.AsyncWith)):
        exprs = [i.context_expr for i in node.items]
    elif isinstance(node, (ast.If, ast.While)):
        exprs = [node.test]
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        exprs = [node.iter]
    if not exprs:
        return None
    wrapper = ast.Expr(value=ast.Tuple(elts=exprs, ctx=ast.Load()))
    return ast.copy_location(wrapper, node)


def _walk_no_nested_defs(node: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        for child in ast.iter_child_nodes(cur):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # code in a nested def or lambda does not run on this line
            stack.append(child)
    return out


def _calls_from_text(text: str, imports: dict[str, str]) -> tuple[CallAtLine, ...]:
    """Fallback for files that do not parse: try the single line alone."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return ()
    return tuple(_resolve(n.func, imports, {}) for n in ast.walk(tree) if isinstance(n, ast.Call))
