"""HD101: `with ThreadPoolExecutor(...) as ex:` in async code.

Leaving the block calls `shutdown(wait=True)` on the event-loop thread. The fix
creates the executor before a `try`, runs the block's body inside it and shuts
down with `ex.shutdown(wait=False, cancel_futures=True)` in `finally`. Each
`x = await loop.run_in_executor(ex, ...)` statement is rewritten to track its
future, and futures still pending are cancelled in `finally` (the shape of the
catalog's HD101 `good` example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import Plan, Rewrite, parse_stmt, short
from hangdoctor.fix.model import FixSite
from hangdoctor.fix.shutdown import is_executor_call

__all__ = ["find_executor_with", "plan_executor_with"]


def find_executor_with(index: SourceIndex, site: FixSite) -> cst.With | None:
    """The `with` statement reported at `site`, if there is one."""
    found = index.find(cst.With, site.line, site.col, lambda w: True)
    return found[0] if found else None


@dataclass(frozen=True)
class _Uses:
    tracked: tuple[cst.SimpleStatementLine, ...]  # `x = await loop.run_in_executor(ex, ...)`
    untracked: tuple[int, ...]  # lines of run_in_executor(ex, ...) in other shapes
    other: tuple[int, ...]  # lines where ex is used otherwise (submit, map, passed on)
    after: tuple[int, ...]  # lines after the block that use ex


def _names(node: cst.CSTNode, name: str) -> list[cst.Name]:
    found: list[cst.Name] = []

    class _Find(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            if n.value == name:
                found.append(n)

    node.visit(_Find())
    return found


def _run_in_executor_call(index: SourceIndex, name: cst.Name) -> cst.Call | None:
    """The `<loop>.run_in_executor(name, ...)` call that has `name` as first argument."""
    arg = index.parent(name)
    call = index.parent(arg) if isinstance(arg, cst.Arg) else None
    if (
        isinstance(arg, cst.Arg)
        and isinstance(call, cst.Call)
        and call.args
        and call.args[0] is arg
        and arg.keyword is None
        and not arg.star
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value == "run_in_executor"
    ):
        return call
    return None


def _trackable(
    index: SourceIndex, call: cst.Call, fn: cst.FunctionDef | None
) -> cst.SimpleStatementLine | None:
    """The statement to rewrite when `call` is awaited as a whole simple statement."""
    awaited = index.parent(call)
    if not isinstance(awaited, cst.Await) or index.enclosing_function(call) is not fn:
        return None
    small = index.parent(awaited)
    if isinstance(small, cst.Assign):
        ok = small.value is awaited and len(small.targets) == 1
    elif isinstance(small, cst.AnnAssign | cst.Return | cst.Expr):
        ok = small.value is awaited
    else:
        ok = False
    line = index.parent(small) if ok and small is not None else None
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
        return line
    return None


def _uses(index: SourceIndex, block: cst.With, name: str, fn: cst.FunctionDef | None) -> _Uses:
    tracked: list[cst.SimpleStatementLine] = []
    untracked: list[int] = []
    other: list[int] = []
    for use in _names(block.body, name):
        call = _run_in_executor_call(index, use)
        if call is None:
            other.append(index.line(use))
            continue
        stmt = _trackable(index, call, fn)
        if stmt is None:
            untracked.append(index.line(use))
        else:
            tracked.append(stmt)
    end = index.range(block).end.line
    scope_root: cst.CSTNode = fn if fn is not None else index.module
    after: list[int] = []
    for use in _names(scope_root, name):
        if index.line(use) <= end:
            continue
        if _rebinds(index, use):
            break  # a new value: later uses no longer see this executor
        after.append(index.line(use))
        break
    return _Uses(tuple(tracked), tuple(untracked), tuple(other), tuple(after))


def _rebinds(index: SourceIndex, name: cst.Name) -> bool:
    """Whether `name` is the target of an assignment, a `for` or a `with ... as`."""
    parent = index.parent(name)
    if isinstance(parent, cst.AsName | cst.AssignTarget):
        return True
    if isinstance(parent, cst.AnnAssign | cst.For):
        return parent.target is name
    return False


def _lines(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in sorted(set(numbers)))


def _track_rewrite(pending: str, fut: str, module: cst.Module) -> Rewrite:
    """`x = await loop.run_in_executor(...)` -> fut = ...; pending.add(fut); x = await fut; ..."""

    def rewrite(node: Any) -> cst.FlattenSentinel[cst.BaseStatement]:
        assert isinstance(node, cst.SimpleStatementLine)
        small = node.body[0]
        assert isinstance(small, cst.Assign | cst.AnnAssign | cst.Return | cst.Expr)
        awaited = small.value
        assert isinstance(awaited, cst.Await)
        submit = cst.SimpleStatementLine(
            body=[
                cst.Assign(
                    targets=[cst.AssignTarget(target=cst.Name(fut))],
                    value=awaited.expression.with_changes(lpar=(), rpar=()),
                )
            ],
            leading_lines=node.leading_lines,
        )
        add = parse_stmt(f"{pending}.add({fut})", module)
        wait = node.with_changes(
            leading_lines=(),
            body=[small.with_changes(value=awaited.with_changes(expression=cst.Name(fut)))],
        )
        out: list[cst.BaseStatement] = [submit, add, wait]
        if not isinstance(small, cst.Return):
            out.append(parse_stmt(f"{pending}.discard({fut})", module))
        return cst.FlattenSentinel(out)

    return rewrite


def plan_executor_with(
    index: SourceIndex, site: FixSite, block: cst.With, target: tuple[int, int]
) -> Plan | str:
    """The plan for one `with <executor> as ex:` block, or why it is left alone."""
    if block.asynchronous is not None:
        return "An `async with` does not run Executor.__exit__ on the loop; nothing to fix."
    found = [i for i, item in enumerate(block.items) if is_executor_call(index, item.item)]
    if not found:
        return (
            "The `with` statement does not create a ThreadPoolExecutor or ProcessPoolExecutor "
            "the fixer can recognise."
        )
    if len(found) > 1:
        return "The `with` statement creates several executors; split it by hand first."
    pos = found[0]
    item = block.items[pos]
    reason = index.not_async_reason(block)
    if reason:
        return f"The executor block is not fixed because {reason}."
    if item.asname is None:
        return (
            "The executor has no `as` name, so no work can be submitted to it and leaving "
            "the block does not wait for anything."
        )
    if not isinstance(item.asname.name, cst.Name):
        return (
            f"The executor is bound to `{index.code(item.asname.name)}`, not a plain name; "
            "the fixer only rewrites `with ... as name:`."
        )
    ex = item.asname.name.value
    fn = index.enclosing_function(block)
    uses = _uses(index, block, ex, fn)
    if uses.after:
        return (
            f"`{ex}` is used after the block (line {_lines(uses.after)}); the fixer would "
            "change what that code sees."
        )
    if uses.other:
        return (
            f"`{ex}` is used other than by `await loop.run_in_executor({ex}, ...)` (line "
            f"{_lines(uses.other)}): leaving the block waits for that work today, and not "
            "waiting could change what the code after it sees; fix it by hand."
        )

    taken: set[str] = set()
    pending = index.fresh_name("pending", taken) if uses.tracked else ""
    fut = index.fresh_name("fut", taken) if uses.tracked else ""
    modern = target >= (3, 9)
    module = index.module
    edits: dict[cst.CSTNode, Rewrite] = {
        stmt: _track_rewrite(pending, fut, module) for stmt in uses.tracked
    }
    shutdown = (
        f"{ex}.shutdown(wait=False, cancel_futures=True)"
        if modern
        else (f"{ex}.shutdown(wait=False)")
    )
    final = [f"for {fut} in {pending}:", f"    {fut}.cancel()"] if uses.tracked else []
    template = parse_stmt(
        "\n".join(
            ["try:", "    pass", "finally:", *("    " + s for s in final), f"    {shutdown}"]
        ),
        module,
    )
    assert isinstance(template, cst.Try)

    def rewrite(node: Any) -> cst.With | cst.FlattenSentinel[cst.BaseStatement]:
        assert isinstance(node, cst.With)
        items = list(node.items)
        before, executor, after = items[:pos], items[pos], items[pos + 1 :]
        body: cst.BaseSuite = node.body
        assert isinstance(body, cst.IndentedBlock)
        header = body.header
        if after:
            last = after[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            inner = node.with_changes(
                items=[*after[:-1], last],
                leading_lines=(),
                lpar=cst.MaybeSentinel.DEFAULT,
                rpar=cst.MaybeSentinel.DEFAULT,
            )
            inner = inner.with_changes(body=body.with_changes(header=cst.TrailingWhitespace()))
            try_body = cst.IndentedBlock(body=[inner])
        else:
            try_body = body.with_changes(header=cst.TrailingWhitespace())
        create = cst.SimpleStatementLine(
            body=[
                cst.Assign(
                    targets=[cst.AssignTarget(target=cst.Name(ex))],
                    value=executor.item.with_changes(lpar=(), rpar=()),
                )
            ],
        )
        stmts: list[cst.BaseStatement] = [create]
        if uses.tracked:
            stmts.append(parse_stmt(f"{pending} = set()", module))
        stmts.append(template.with_changes(body=try_body))
        if before:
            last = before[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return node.with_changes(
                items=[*before[:-1], last],
                body=cst.IndentedBlock(body=stmts, header=header),
                lpar=cst.MaybeSentinel.DEFAULT,
                rpar=cst.MaybeSentinel.DEFAULT,
            )
        stmts[0] = create.with_changes(leading_lines=node.leading_lines, trailing_whitespace=header)
        return cst.FlattenSentinel(stmts)

    call = short(index.code(item.item), 50)
    desc = f"`with {call} as {ex}:` -> `{ex} = {call}` + try/finally: `{shutdown}`"
    if uses.tracked:
        desc += f"; pending futures tracked in `{pending}` and cancelled"
    if uses.untracked:
        desc += (
            f"; note: run_in_executor at line {_lines(uses.untracked)} is awaited in a shape "
            "the fixer does not rewrite, so its future is not tracked"
        )
    if not modern:
        desc += (
            f"; note: Python {target[0]}.{target[1]} has no cancel_futures, so pending work "
            "is not cancelled and still runs in the background"
        )
    return Plan(
        site=site,
        line=index.line(block),
        description=desc,
        safe=True,
        edits={block: rewrite, **edits},
    )
