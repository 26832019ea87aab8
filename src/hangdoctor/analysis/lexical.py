"""What a suspended coroutine holds and awaits, read from its source at its current line.

asyncio does not record who holds an `asyncio.Lock` or a semaphore token. The
code does: a coroutine stopped at a line inside `async with lock_a:` holds
`lock_a`. This module reads that from the syntax tree, for a frame's file and
line: the `async with` items around the line (held), and the expression the
line awaits or enters (waited on), both as the code writes them. The in-process
runtime evaluates those expressions in the frame to get the objects' identity;
from outside (CPython 3.14's remote reader) the text and the file are the key.

Standard library only: the runtime imports it inside production services.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["Held", "awaited_at", "held_at", "module_names", "simple_expression"]

# methods whose receiver is the thing waited on: `await lock.acquire()`, `await ev.wait()`
_WAIT_METHODS = frozenset(
    {
        "acquire",
        "acquire_on_behalf_of",
        "wait",
        "wait_for",
        "get",
        "put",
        "join",
        "receive",
        "send",
        "connect",
        "checkout",
    }
)
# wrappers whose first argument is what is really awaited
_WRAPPERS = frozenset({"wait_for", "shield", "ensure_future", "create_task"})


@dataclass(frozen=True)
class Held:
    """One `async with` item a frame is inside of: the code holds what it entered."""

    expr: str  # as written: "lock_a", "self._lock", "engine.connect()"
    line: int  # the line of the `async with`
    simple: bool  # a name or attribute chain (no call): it can be looked up in the frame
    target: str | None = None  # the name it was bound to: `async with pool() as target`


def held_at(tree: ast.Module, line: int) -> list[Held]:
    """The `async with` items whose body contains `line`, outermost first.

    Items of a multi-item `async with a, b:` before the one a frame waits on at
    the header line are held too (they were entered first).
    """
    out: list[Held] = []
    for node in _enclosing(tree, line):
        if not isinstance(node, ast.AsyncWith):
            continue
        body_start = node.body[0].lineno if node.body else node.lineno + 1
        if line >= body_start:
            out.extend(_held(item.context_expr, node.lineno, item) for item in node.items)
        elif len(node.items) > 1:
            # waiting on the header line: the items written before the one on this line
            for item in node.items:
                if item.context_expr.lineno >= line:
                    break
                out.append(_held(item.context_expr, node.lineno, item))
    return out


def awaited_at(tree: ast.Module, line: int) -> str | None:
    """The expression the statement at `line` waits on, as the code names it.

    `async with lock_b:` -> "lock_b"; `await self._lock.acquire()` -> "self._lock";
    `await asyncio.wait_for(done.wait(), 5)` -> "done"; `await fut` -> "fut".
    None when the line awaits a plain call (`await fetch()`) or cannot be read.
    """
    stmt = _statement_at(tree, line)
    if stmt is None:
        return None
    if isinstance(stmt, ast.AsyncWith):
        items = [i.context_expr for i in stmt.items if i.context_expr.lineno <= line]
        if items:
            return _receiver(items[-1])
    if isinstance(stmt, ast.AsyncFor) and stmt.iter.lineno <= line:
        return _receiver(stmt.iter)
    for node in ast.walk(stmt):
        if isinstance(node, ast.Await) and node.lineno <= line <= (node.end_lineno or line):
            return _receiver(node.value)
    for node in ast.walk(stmt):
        if isinstance(node, ast.Await):
            return _receiver(node.value)
    return None


def module_names(tree: ast.Module) -> frozenset[str]:
    """Names bound at module level: an `async with NAME` on one of them is one object."""
    names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return frozenset(names)


def simple_expression(text: str) -> bool:
    """A name or an attribute chain (`a`, `self.pool.lock`): safe to look up without calls."""
    try:
        expr = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    return _is_simple(expr)


def _is_simple(expr: ast.expr) -> bool:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return isinstance(expr, ast.Name)


def _held(expr: ast.expr, line: int, item: ast.withitem) -> Held:
    bound = item.optional_vars
    target = bound.id if isinstance(bound, ast.Name) else None
    return Held(ast.unparse(expr), line, _is_simple(expr), target)


def _receiver(expr: ast.expr) -> str | None:
    """What an awaited expression waits on: the receiver of a wait method, a wrapper's argument."""
    for _ in range(4):  # wait_for(shield(x.wait())) at most
        if isinstance(expr, ast.Call):
            func = expr.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _WRAPPERS and expr.args:
                expr = expr.args[0]
                continue
            if isinstance(func, ast.Attribute) and name in _WAIT_METHODS:
                return _receiver(func.value) if not isinstance(func.value, ast.Call) else None
            return None
        if isinstance(expr, (ast.Name, ast.Attribute, ast.Subscript)):
            return ast.unparse(expr)
        return None
    return None


def _enclosing(tree: ast.Module, line: int) -> list[ast.AST]:
    """Statements containing `line`, outermost first, not crossing into nested defs.

    Kept on the tree per line: a snapshot asks for the same lines of the same files for
    every task that waits there.
    """
    memo: dict[int, list[ast.AST]] | None = tree.__dict__.get("_hangdoctor_enclosing")
    if memo is None:
        memo = tree.__dict__["_hangdoctor_enclosing"] = {}
    found = memo.get(line)
    if found is None:
        found = memo[line] = _find_enclosing(tree, line)
    return found


def _find_enclosing(tree: ast.Module, line: int) -> list[ast.AST]:
    chain: list[ast.AST] = []
    body: list[ast.stmt] = list(tree.body)
    while True:
        nxt = None
        for node in body:
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                nxt = node
                break
        if nxt is None:
            return chain
        chain.append(nxt)
        body = [
            child
            for field in ("body", "orelse", "finalbody", "handlers", "cases")
            for child in _statements(getattr(nxt, field, None))
        ]


def _statements(value: object) -> list[ast.stmt]:
    if not isinstance(value, list):
        return []
    out: list[ast.stmt] = []
    for item in value:
        if isinstance(item, ast.stmt):
            out.append(item)
        elif isinstance(item, (ast.ExceptHandler, ast.match_case)):
            out.extend(item.body)
    return out


def _statement_at(tree: ast.Module, line: int) -> ast.stmt | None:
    """The innermost statement containing `line` (a compound one only on its header)."""
    found: ast.stmt | None = None
    for node in _enclosing(tree, line):
        if isinstance(node, ast.stmt):
            found = node
    return found
