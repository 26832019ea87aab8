"""HD101, explicit form: `ex.shutdown()` / `shutdown(wait=True)` in async code.

It becomes `ex.shutdown(wait=False, cancel_futures=True)` (`wait=False` alone
below Python 3.9), when `ex` is evidently an executor: created by
`ThreadPoolExecutor(...)` / `ProcessPoolExecutor(...)` in an assignment to the
same name (or attribute) or a `with ... as ex`.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import Plan, preview
from hangdoctor.fix.model import FixSite

__all__ = ["EXECUTORS", "find_shutdown", "is_executor_call", "plan_shutdown"]

EXECUTORS = frozenset(
    {
        "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures.thread.ThreadPoolExecutor",
        "concurrent.futures.process.ProcessPoolExecutor",
    }
)


def is_executor_call(index: SourceIndex, node: cst.CSTNode | None) -> bool:
    """Whether `node` is a call creating a ThreadPoolExecutor or ProcessPoolExecutor."""
    return isinstance(node, cst.Call) and bool(index.qualified_names(node.func) & EXECUTORS)


def _is_shutdown(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "shutdown"


def find_shutdown(index: SourceIndex, site: FixSite) -> cst.Call | None:
    """The `<executor>.shutdown(...)` call reported at `site`, if there is one."""
    found = index.find(cst.Call, site.line, site.col, _is_shutdown)
    return found[0] if found else None


def _created_as_executor(index: SourceIndex, receiver: cst.BaseExpression) -> bool:
    if is_executor_call(index, receiver):
        return True
    text = index.code(receiver)
    found = False

    class _Find(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            nonlocal found
            if any(index.code(t.target) == text for t in node.targets) and is_executor_call(
                index, node.value
            ):
                found = True

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            nonlocal found
            if index.code(node.target) == text and is_executor_call(index, node.value):
                found = True

        def visit_WithItem(self, node: cst.WithItem) -> None:
            nonlocal found
            if (
                node.asname is not None
                and index.code(node.asname.name) == text
                and is_executor_call(index, node.item)
            ):
                found = True

    index.module.visit(_Find())
    return found


def _created_here(index: SourceIndex, call: cst.Call, receiver: cst.BaseExpression) -> bool:
    """Whether `receiver` is a plain name assigned an executor in the coroutine itself.

    Such a pool lives for one call: the fix stops the join, but a call cancelled
    while its job runs still leaves that job's thread behind, so the fix says so.
    """
    fn = index.enclosing_function(call)
    if not isinstance(receiver, cst.Name) or fn is None:
        return False
    name = receiver.value
    found = False

    class _Find(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            nonlocal found
            named = any(
                isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets
            )
            found = found or (named and is_executor_call(index, node.value))

    fn.visit(_Find())
    return found


def _literal(arg: cst.Arg | None) -> bool | None:
    """True/False for a literal (missing means the default, True); None when computed."""
    if arg is None:
        return True
    if isinstance(arg.value, cst.Name) and arg.value.value in ("True", "False"):
        return arg.value.value == "True"
    return None


def _arg(call: cst.Call, position: int, keyword: str) -> cst.Arg | None:
    for i, arg in enumerate(call.args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg
        if arg.keyword is None and not arg.star and i == position:
            return arg
    return None


def plan_shutdown(
    index: SourceIndex, site: FixSite, call: cst.Call, target: tuple[int, int]
) -> Plan | str:
    """The plan for one explicit shutdown, or why it is left alone."""
    assert isinstance(call.func, cst.Attribute)
    receiver = call.func.value
    what = index.code(call)
    reason = index.not_async_reason(call)
    if reason:
        return f"`{what}` is not fixed because {reason}."
    if any(a.star for a in call.args):
        return f"`{what}` passes its arguments with * or **, which the fixer does not rewrite."
    wait = _literal(_arg(call, 0, "wait"))
    cancel = _literal(_arg(call, 1, "cancel_futures")) if _arg(call, 1, "cancel_futures") else False
    if wait is None or cancel is None:
        return f"`{what}` computes its arguments at run time; set wait=False by hand."
    modern = target >= (3, 9)
    if wait is False and (cancel or not modern):
        return f"`{what}` already does not wait on the event loop."
    if not _created_as_executor(index, receiver):
        return (
            f"The fixer cannot tell that `{index.code(receiver)}` is a ThreadPoolExecutor "
            "or ProcessPoolExecutor."
        )

    def rewrite(node: Any) -> cst.Call:
        assert isinstance(node, cst.Call)
        eq = cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        )
        args = [cst.Arg(keyword=cst.Name("wait"), value=cst.Name("False"), equal=eq)]
        if modern:
            args[0] = args[0].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
            args.append(
                cst.Arg(keyword=cst.Name("cancel_futures"), value=cst.Name("True"), equal=eq)
            )
        return node.with_changes(args=args)

    desc = preview(index.module, call, rewrite(call))
    if _created_here(index, call, receiver):
        desc += (
            f"; note: `{index.code(receiver)}` is created in this coroutine, a pool per call: "
            "a call cancelled while its job runs leaves that thread behind, so create one "
            "executor per application instead (see `hangdoctor explain HD101`)"
        )
    if not modern:
        desc += (
            f" (Python {target[0]}.{target[1]} has no cancel_futures: pending work is not "
            "cancelled and still runs in the background)"
        )
    return Plan(
        site=site, line=index.line(call), description=desc, safe=True, edits={call: rewrite}
    )
