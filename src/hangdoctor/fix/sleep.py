"""HD201: `time.sleep(x)` in async code becomes `await asyncio.sleep(x)`."""

from __future__ import annotations

from typing import Any

import libcst as cst

from hangdoctor.fix.context import SourceIndex
from hangdoctor.fix.edit import Plan, asyncio_call_plan, await_in_place, preview
from hangdoctor.fix.imports import module_ref
from hangdoctor.fix.model import FixSite
from hangdoctor.fix.unused import imported_aliases

__all__ = ["find_sleep", "plan_sleep"]


def _is_sleep(index: SourceIndex, call: cst.Call) -> bool:
    return "time.sleep" in index.qualified_names(call.func)


def find_sleep(index: SourceIndex, site: FixSite) -> cst.Call | None:
    """The `time.sleep(...)` call reported at `site`, if there is one."""
    found = index.find(cst.Call, site.line, site.col, lambda c: _is_sleep(index, c))
    return found[0] if found else None


def plan_sleep(index: SourceIndex, site: FixSite, call: cst.Call) -> Plan | str:
    """The plan for one `time.sleep` call, or why it is left alone."""
    what = index.code(call.func)
    reason = index.not_async_reason(call)
    if reason:
        return f"`{what}(...)` is not fixed because {reason}."
    parent = index.parent(call)
    if not isinstance(parent, cst.Expr):
        return (
            f"`{what}(...)` is used as a value inside a larger expression; "
            "replace it with `await asyncio.sleep(...)` by hand."
        )
    if any(arg.keyword is not None for arg in call.args):
        return f"`{what}(...)` is called with keyword arguments that asyncio.sleep does not take."
    ref = module_ref(index, call, "asyncio")
    if isinstance(ref, str):
        return ref

    def rewrite(node: Any) -> cst.Await:
        assert isinstance(node, cst.Call)
        func = cst.Attribute(value=cst.Name(ref.name), attr=cst.Name("sleep"))
        return await_in_place(node.with_changes(func=func), node, False)

    desc = preview(index.module, call, rewrite(call))
    return asyncio_call_plan(
        site,
        index.line(call),
        call,
        rewrite,
        desc,
        needs_import=ref.needs_import,
        unused_imports=_imports_used(index, call.func),
    )


def _imports_used(index: SourceIndex, func: cst.BaseExpression) -> tuple[cst.ImportAlias, ...]:
    """The import this call used (`import time`, `import time as t`, `from time import sleep`):
    it goes when the fixed module uses its name nowhere else (fix/unused.py)."""
    root = func.value if isinstance(func, cst.Attribute) else func
    return imported_aliases(index, root) if isinstance(root, cst.Name) else ()
