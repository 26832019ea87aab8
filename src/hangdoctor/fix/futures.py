"""HD102: `fut.result()` on a concurrent future becomes `await asyncio.wrap_future(fut)`.

Only futures whose type is evident are touched: `ex.submit(...).result()`, or a
name every assignment of which in the function is `name = something.submit(...)`.
`.result(timeout)` becomes `await asyncio.wait_for(asyncio.wrap_future(fut), timeout)`.
"""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.metadata import Assignment

from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import (
    Plan,
    asyncio_call_plan,
    await_in_place,
    needs_parens,
    preview,
)
from hangdoctor.fix.imports import module_ref
from hangdoctor.fix.model import FixSite

__all__ = ["find_result_call", "plan_result"]


def _is_result(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "result"


def _is_submit(expr: cst.CSTNode | None) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "submit"
    )


def find_result_call(index: SourceIndex, site: FixSite) -> cst.Call | None:
    """The `<future>.result(...)` call reported at `site`, if there is one."""
    found = index.find(cst.Call, site.line, site.col, _is_result)
    return found[0] if found else None


def _why_not_a_future(index: SourceIndex, receiver: cst.BaseExpression) -> str | None:
    """None when `receiver` is evidently a concurrent.futures.Future, else why not."""
    if _is_submit(receiver):
        return None
    if not isinstance(receiver, cst.Name):
        return f"`{index.code(receiver)}` is not evidently a concurrent.futures.Future."
    name = receiver.value
    scope = index.scope(receiver)
    fn = index.enclosing_function(receiver)
    assignments = scope[name] if scope is not None else set()
    unknown = (
        f"`{name}` is not evidently a concurrent.futures.Future (from `{name} = ex.submit(...)`)."
    )
    if not assignments or fn is None:
        return unknown
    for assignment in assignments:
        if not isinstance(assignment, Assignment):
            return unknown
        target = assignment.node
        if assignment.scope is not scope or index.enclosing_function(target) is not fn:
            return unknown
        holder = index.parent(target)
        if isinstance(holder, cst.AssignTarget):
            stmt = index.parent(holder)
            if not (isinstance(stmt, cst.Assign) and len(stmt.targets) == 1):
                return unknown
            value: cst.CSTNode | None = stmt.value
        elif isinstance(holder, cst.AnnAssign) and holder.target is target:
            value = holder.value
        else:
            return unknown
        if not _is_submit(value):
            return unknown
    return None


def plan_result(index: SourceIndex, site: FixSite, call: cst.Call) -> Plan | str:
    """The plan for one `.result()` call, or why it is left alone."""
    assert isinstance(call.func, cst.Attribute)
    receiver = call.func.value
    reason = index.not_async_reason(call)
    if reason:
        return f"`{index.code(call)}` is not fixed because {reason}."
    why = _why_not_a_future(index, receiver)
    if why:
        return why
    if len(call.args) > 1 or any(
        a.star or (a.keyword is not None and a.keyword.value != "timeout") for a in call.args
    ):
        return f"`{index.code(call)}` has arguments the fixer does not rewrite."
    ref = module_ref(index, call, "asyncio")
    if isinstance(ref, str):
        return ref
    parens = needs_parens(index.parent(call), call)
    mod = ref.name

    def rewrite(node: Any) -> cst.Await:
        assert isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
        wrapped = cst.Call(
            func=cst.Attribute(value=cst.Name(mod), attr=cst.Name("wrap_future")),
            args=[cst.Arg(value=node.func.value.with_changes(lpar=(), rpar=()))],
        )
        if node.args:
            timeout = node.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            wrapped = cst.Call(
                func=cst.Attribute(value=cst.Name(mod), attr=cst.Name("wait_for")),
                args=[
                    cst.Arg(
                        value=wrapped,
                        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                    ),
                    timeout,
                ],
            )
        return await_in_place(wrapped, node, parens)

    desc = preview(index.module, call, rewrite(call))
    if call.args:
        desc += (
            " (on timeout the job is cancelled if it has not started; before Python 3.11 "
            "the error is asyncio.TimeoutError, not concurrent.futures.TimeoutError)"
        )
    return asyncio_call_plan(
        site, index.line(call), call, rewrite, desc, needs_import=ref.needs_import
    )
