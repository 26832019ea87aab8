"""HD101: `with ThreadPoolExecutor(...) as ex:` in async code.

Leaving the block calls `shutdown(wait=True)` on the event-loop thread. An
earlier fix kept a pool per block and shut it down with `wait=False`: the loop
no longer waited, but every dropped stream left a worker thread behind for as
long as its upstream call ran (80 dropped streams took a service from 2 to 82
threads). The fix now removes the per-call pool: the block's body runs in place
and each `loop.run_in_executor(ex, ...)` becomes `loop.run_in_executor(None,
...)`, the loop's default executor. That pool is created once per loop, bounded
(`min(32, CPUs + 4)` threads), shut down by asyncio at exit and never joined by
request code, so the number of threads cannot grow with the number of requests.
Awaiting the executor's future is what cancels work on disconnect: the task's
cancellation cancels the future, and a job still queued never starts.

Only thread pools are rewritten: moving a ProcessPoolExecutor's work to threads
would change what it does, so that case is left to the user with the remedy
(one process pool per application). The import of the executor class is dropped
when the block was its only use, so the fixed file stays lint-clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import Plan, Rewrite, short
from hangdoctor.fix.model import FixSite
from hangdoctor.fix.shutdown import is_executor_call
from hangdoctor.fix.unused import imported_aliases

__all__ = ["find_executor_with", "plan_executor_with"]

_THREAD_POOLS = frozenset(
    {"concurrent.futures.ThreadPoolExecutor", "concurrent.futures.thread.ThreadPoolExecutor"}
)
# arguments whose effect the default executor would lose: each worker's set-up code
_SETUP_ARGS = frozenset({"initializer", "initargs"})


def find_executor_with(index: SourceIndex, site: FixSite) -> cst.With | None:
    """The `with` statement reported at `site`, if there is one."""
    found = index.find(cst.With, site.line, site.col, lambda w: True)
    return found[0] if found else None


@dataclass(frozen=True)
class _Uses:
    executor_args: tuple[cst.Name, ...]  # `ex` as the first argument of run_in_executor
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


def _is_executor_arg(index: SourceIndex, name: cst.Name) -> bool:
    """Whether `name` is the first, positional argument of `<loop>.run_in_executor(...)`."""
    arg = index.parent(name)
    call = index.parent(arg) if isinstance(arg, cst.Arg) else None
    return (
        isinstance(arg, cst.Arg)
        and isinstance(call, cst.Call)
        and bool(call.args)
        and call.args[0] is arg
        and arg.keyword is None
        and not arg.star
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value == "run_in_executor"
    )


def _shadowed(index: SourceIndex, use: cst.Name, binding: cst.Name) -> bool:
    """Whether `use` sits in a nested scope with its own `ex` (a parameter, say)."""
    scope, home = index.scope(use), index.scope(binding)
    if scope is None or home is None or scope is home:
        return False
    return any(a.scope is scope for a in scope[use.value])


def _uses(
    index: SourceIndex, block: cst.With, binding: cst.Name, fn: cst.FunctionDef | None
) -> _Uses:
    name = binding.value
    executor_args: list[cst.Name] = []
    other: list[int] = []
    for use in _names(block.body, name):
        if _shadowed(index, use, binding):
            continue
        if _is_executor_arg(index, use):
            executor_args.append(use)
        else:
            other.append(index.line(use))
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
    return _Uses(tuple(executor_args), tuple(other), tuple(after))


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


def _root_name(func: cst.BaseExpression) -> cst.Name | cst.Attribute | None:
    """What names the executor's import: `Pool`, or `cf` in `cf.ThreadPoolExecutor`.

    A dotted import (`import concurrent.futures`) is looked up by the dotted
    prefix (`concurrent.futures`), the way libcst's scopes record it.
    """
    if isinstance(func, cst.Name):
        return func
    if isinstance(func, cst.Attribute):
        return func.value if isinstance(func.value, cst.Name | cst.Attribute) else None
    return None


def _to_default(node: Any) -> cst.Name:
    assert isinstance(node, cst.Name)
    return node.with_changes(value="None")


def _reason_not_threads(index: SourceIndex, call: cst.Call) -> str | None:
    """Why this executor's work cannot move to the loop's default executor, if it cannot."""
    if not index.qualified_names(call.func) & _THREAD_POOLS:
        return (
            "The `with` block creates a process pool per call. Its work cannot move to the "
            "loop's default executor (threads, not processes), and a pool per call leaves "
            "its workers running after every dropped request: create one process pool at "
            "application startup, shut it down with `shutdown(wait=False, "
            "cancel_futures=True)` at the end, and pass it to `run_in_executor` (see "
            "`hangdoctor explain HD101`)."
        )
    setup = [a.keyword.value for a in call.args if a.keyword and a.keyword.value in _SETUP_ARGS]
    if setup or any(a.star for a in call.args):
        what = f"`{setup[0]}=`" if setup else "arguments passed with * or **"
        return (
            f"The executor is created with {what}, which the loop's default executor would "
            "not apply to its threads: create one such executor at application startup and "
            "pass it to `run_in_executor` by hand (see `hangdoctor explain HD101`)."
        )
    return None


def plan_executor_with(
    index: SourceIndex, site: FixSite, block: cst.With, target: tuple[int, int]
) -> Plan | str:
    """The plan for one `with <executor> as ex:` block, or why it is left alone.

    `target` is the lowest Python the code must run on; the default executor
    exists on every version, so the plan is the same for all of them.
    """
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
    creation = item.item
    assert isinstance(creation, cst.Call)  # is_executor_call said so
    unsuitable = _reason_not_threads(index, creation)
    if unsuitable:
        return unsuitable
    binding = item.asname.name
    ex = binding.value
    fn = index.enclosing_function(block)
    uses = _uses(index, block, binding, fn)
    if uses.after:
        return (
            f"`{ex}` is used after the block (line {_lines(uses.after)}); the fixer would "
            "change what that code sees."
        )
    if uses.other:
        return (
            f"`{ex}` is used other than as the executor of `loop.run_in_executor({ex}, ...)` "
            f"(line {_lines(uses.other)}): leaving the block waits for that work today, and "
            "not waiting could change what the code after it sees; fix it by hand."
        )

    def rewrite(node: Any) -> cst.With | cst.FlattenSentinel[cst.BaseStatement]:
        assert isinstance(node, cst.With)
        items = list(node.items)
        rest = items[:pos] + items[pos + 1 :]
        body = node.body
        assert isinstance(body, cst.IndentedBlock)
        if rest:
            last = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return node.with_changes(
                items=[*rest[:-1], last],
                lpar=cst.MaybeSentinel.DEFAULT,
                rpar=cst.MaybeSentinel.DEFAULT,
            )
        # the block's statements take its place; the `with` line and its comment go
        stmts: list[cst.BaseStatement] = list(body.body)
        first = stmts[0]
        assert isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement)
        stmts[0] = first.with_changes(leading_lines=[*node.leading_lines, *first.leading_lines])
        return cst.FlattenSentinel(stmts)

    edits: dict[cst.CSTNode, Rewrite] = {block: rewrite}
    edits.update(dict.fromkeys(uses.executor_args, _to_default))
    root = _root_name(creation.func)
    call = short(index.code(creation), 50)
    desc = (
        f"`with {call} as {ex}:` removed: its jobs run in the loop's default executor "
        f"(`loop.run_in_executor(None, ...)`), one bounded pool per loop that is never "
        "joined on the loop, so a dropped request leaves no thread behind and a cancelled "
        "wait cancels its queued job"
    )
    if creation.args:
        desc += (
            f"; note: `{call}` set this block's own pool size, the default executor has "
            "min(32, CPUs + 4) threads shared by the loop"
        )
    return Plan(
        site=site,
        line=index.line(block),
        description=desc,
        safe=True,
        edits=edits,
        unused_imports=imported_aliases(index, root) if root is not None else (),
    )
