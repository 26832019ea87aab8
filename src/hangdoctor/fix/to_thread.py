"""Unsafe (HD202-HD207, HD501): a blocking call `f(a, b=c)` in async code runs in a thread.

It becomes `await asyncio.to_thread(f, a, b=c)` (Python 3.9+), or
`await asyncio.get_running_loop().run_in_executor(None, functools.partial(f, a, b=c))`
for older targets. Unsafe because the call then runs on another thread: the
objects it touches must be thread-safe, and context variables are copied only
by `to_thread`.
"""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.metadata import Assignment

from hangdoctor.catalog import RULES
from hangdoctor.fix.codes import UNSAFE_CODES
from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import Plan, await_in_place, needs_parens, preview
from hangdoctor.fix.imports import module_ref
from hangdoctor.fix.model import FixSite

__all__ = ["UNSAFE_CODES", "find_blocking_call", "plan_to_thread"]


def _assigned_call(index: SourceIndex, name: cst.Name) -> cst.Call | None:
    """The call a local name was made from, when its only assignment is `name = f(...)`."""
    scope = index.scope(name)
    bindings = list(scope[name.value]) if scope is not None else []
    if len(bindings) != 1 or not isinstance(bindings[0], Assignment):
        return None
    holder = index.parent(bindings[0].node)
    stmt = index.parent(holder) if isinstance(holder, cst.AssignTarget) else None
    if isinstance(stmt, cst.Assign) and isinstance(stmt.value, cst.Call):
        return stmt.value
    return None


def _dotted(index: SourceIndex, expr: cst.BaseExpression, depth: int = 0) -> set[str]:
    """Dotted names `expr` may stand for; calls in a chain drop out (`a.B().c` -> `a.B.c`).

    A local whose type is evident from its assignment stands for its constructor:
    after `s = requests.Session()`, `s.get` is `requests.Session.get`.
    """
    if depth > 8:
        return set()
    if isinstance(expr, cst.Call):
        return _dotted(index, expr.func, depth + 1)
    if isinstance(expr, cst.Attribute):
        return {f"{base}.{expr.attr.value}" for base in _dotted(index, expr.value, depth + 1)}
    if isinstance(expr, cst.Name):
        names = set(index.qualified_names(expr)) | {expr.value}
        made_by = _assigned_call(index, expr)
        if made_by is not None:
            names |= _dotted(index, made_by.func, depth + 1)
        return names
    return set()


def _known_blocking(index: SourceIndex, call: cst.Call, code: str) -> bool:
    rules = [RULES[code]] if code in RULES else list(RULES.values())
    names = _dotted(index, call.func)
    last = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
    return any(names & set(r.calls) or (last is not None and last in r.methods) for r in rules)


def _awaits_inside(node: cst.CSTNode) -> bool:
    found = False

    class _Find(cst.CSTVisitor):
        def visit_Await(self, n: cst.Await) -> bool:
            nonlocal found
            found = True
            return False

    node.visit(_Find())
    return found


_ITERATING = (cst.For, cst.With, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


def _iteration_reported(index: SourceIndex, call: cst.Call, site: FixSite) -> bool:
    """The scan reported the `for` (`with`, comprehension) around `call`, not `call`: the
    iteration of the generator it makes runs the blocking body."""
    if index.range(call).start.column == site.col:
        return False
    return any(
        isinstance(n, _ITERATING) and index.line(n) == site.line for n in index.ancestors(call)
    )


def find_blocking_call(index: SourceIndex, site: FixSite) -> cst.Call | str:
    """The blocking call reported at `site`, or why it cannot be told apart."""
    found = index.find(cst.Call, site.line, site.col, lambda c: True)
    if not found:
        return f"There is no call at line {site.line}, column {site.col}."
    if len(found) == 1:
        call = found[0]
        if _iteration_reported(index, call, site):
            return (
                f"Line {site.line} iterates a generator whose body blocks; moving the call "
                "that makes it to a thread would move nothing."
            )
        if _awaits_inside(call.func) and not _known_blocking(index, call, site.code):
            # `(await asyncio.to_thread(f)).json()`: what blocked is already off the loop
            return f"The call at line {site.line} works on an awaited result; nothing to move."
        return call
    # several calls start here (`requests.get(u).json()`): take the one the catalog knows
    known = [c for c in found if _known_blocking(index, c, site.code)]
    if len(known) == 1:
        return known[0]
    return (
        f"Several calls start at line {site.line}, column {site.col}; the fixer cannot tell "
        "which one blocks."
    )


def plan_to_thread(
    index: SourceIndex, site: FixSite, call: cst.Call, target: tuple[int, int]
) -> Plan | str:
    """The unsafe plan for one blocking call, or why it is left alone."""
    what = index.code(call)
    reason = index.not_async_reason(call)
    if reason:
        return f"`{what}` is not fixed because {reason}."
    parent = index.parent(call)
    if isinstance(parent, cst.Await):
        return f"`{what}` is already awaited."
    parens = needs_parens(parent, call)
    ref = module_ref(index, call, "asyncio")
    if isinstance(ref, str):
        return ref
    modern = target >= (3, 9)
    keywords = any(a.keyword is not None or a.star == "**" for a in call.args)
    imports = ["asyncio"] if ref.needs_import else []
    partial = "functools.partial"
    if not modern and keywords:
        fref = module_ref(index, call, "functools")
        if isinstance(fref, str):
            return fref
        partial = f"{fref.name}.partial"
        if fref.needs_import:
            imports.append("functools")
    mod = ref.name

    def rewrite(node: Any) -> cst.Await:
        assert isinstance(node, cst.Call)
        fn = node.func.with_changes(lpar=(), rpar=())
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        args = list(node.args)
        if modern:
            to_thread = cst.Attribute(value=cst.Name(mod), attr=cst.Name("to_thread"))
            new_args = [cst.Arg(value=fn, comma=comma if args else cst.MaybeSentinel.DEFAULT)]
            new = node.with_changes(func=to_thread, args=[*new_args, *args])
        else:
            head = cst.parse_expression(f"{mod}.get_running_loop().run_in_executor")
            if keywords:
                inner = cst.Call(
                    func=cst.parse_expression(partial),
                    args=[
                        cst.Arg(value=fn, comma=comma if args else cst.MaybeSentinel.DEFAULT),
                        *args,
                    ],
                )
                new = node.with_changes(
                    func=head,
                    args=[cst.Arg(value=cst.Name("None"), comma=comma), cst.Arg(value=inner)],
                )
            else:
                new_args = [
                    cst.Arg(value=cst.Name("None"), comma=comma),
                    cst.Arg(value=fn, comma=comma if args else cst.MaybeSentinel.DEFAULT),
                ]
                new = node.with_changes(func=head, args=[*new_args, *args])
        return await_in_place(new, node, parens)

    desc = preview(index.module, call, rewrite(call))
    desc += (
        " (unsafe: the call now runs in a worker thread; check that what it touches is thread-safe)"
    )
    return Plan(
        site=site,
        line=index.line(call),
        description=desc,
        safe=False,
        edits={call: rewrite},
        imports=tuple(imports),
    )
