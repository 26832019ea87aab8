"""A planned fix and how plans are applied: node rewrites keyed by the original node.

Every fixer inspects the original tree and returns a `Plan`: which original
nodes to rewrite and how (a function of the node as rewritten so far, so fixes
nested in one another compose), plus the imports the new code needs. All
accepted plans are applied in one pass over the original module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from hangdoctor.fix.imports import add_imports_marked
from hangdoctor.fix.model import FixSite
from hangdoctor.fix.unused import remove_unused_imports

__all__ = [
    "Plan",
    "Rewrite",
    "apply_plans",
    "asyncio_call_plan",
    "await_in_place",
    "needs_parens",
    "parse_expr",
    "parse_stmt",
    "preview",
    "short",
]

Rewrite = Callable[[Any], cst.CSTNode | cst.FlattenSentinel[Any] | cst.RemovalSentinel]


@dataclass(frozen=True)
class Plan:
    """One fix ready to apply."""

    site: FixSite
    line: int  # where the fix applies, 1-based
    description: str
    safe: bool
    edits: Mapping[cst.CSTNode, Rewrite] = field(default_factory=dict)
    imports: tuple[str, ...] = ()  # modules to import at the top: "asyncio", "functools"
    # imports (aliases of the original module) the rewritten code used: each goes when the
    # fixed module no longer uses its name (`import time`; fix/unused.py says what stays)
    unused_imports: tuple[cst.ImportAlias, ...] = ()


class _Apply(cst.CSTTransformer):
    def __init__(
        self, edits: Mapping[cst.CSTNode, Rewrite], within: set[cst.CSTNode] | None
    ) -> None:
        super().__init__()
        self._edits = edits
        self._within = within

    def on_visit(self, node: cst.CSTNode) -> bool:
        # only down the paths to the edited nodes: the rest of the module is kept as it is,
        # not rebuilt node by node (most of a fix's cost, on a module of any size)
        return self._within is None or node in self._within

    def on_leave(self, original_node: Any, updated_node: Any) -> Any:
        rewrite = self._edits.get(original_node)
        if rewrite is None:
            return updated_node
        return rewrite(updated_node)


def asyncio_call_plan(
    site: FixSite,
    line: int,
    call: cst.Call,
    rewrite: Rewrite,
    description: str,
    *,
    needs_import: bool,
    unused_imports: tuple[cst.ImportAlias, ...] = (),
) -> Plan:
    """A safe fix that turns one call into an asyncio one, adding `import asyncio` if needed."""
    if needs_import:
        description += " (adds `import asyncio`)"
    return Plan(
        site=site,
        line=line,
        description=description,
        safe=True,
        edits={call: rewrite},
        imports=("asyncio",) if needs_import else (),
        unused_imports=unused_imports,
    )


def apply_plans(
    module: cst.Module,
    plans: Iterable[Plan],
    ancestors: Callable[[cst.CSTNode], Iterable[cst.CSTNode]] | None = None,
) -> str:
    """The code of `module` with every plan applied (plans must not share a node).

    `ancestors` (`SourceIndex.ancestors`) tells the nodes above each edited one: only
    they are rebuilt. Without it, the whole module is walked.
    """
    edits: dict[cst.CSTNode, Rewrite] = {}
    imports: set[str] = set()
    unused: set[cst.ImportAlias] = set()
    for plan in plans:
        edits.update(plan.edits)
        imports.update(plan.imports)
        unused.update(plan.unused_imports)
    if not edits:
        return module.code
    within: set[cst.CSTNode] | None = None
    if ancestors is not None:
        within = {module}
        for node in edits:
            within.update(ancestors(node))
    fixed = module.visit(_Apply(edits, within))
    # added first, so `import asyncio` takes the place in the import block of an
    # `import time` that then goes
    fixed, added = add_imports_marked(fixed, imports)
    if unused:
        fixed = remove_unused_imports(module, fixed, unused, added)
    return fixed.code


def parse_expr(code: str, module: cst.Module) -> cst.BaseExpression:
    return cst.parse_expression(code, config=module.config_for_parsing)


def parse_stmt(code: str, module: cst.Module) -> cst.BaseStatement:
    """A statement written with `    ` indents, re-indented to the module's own indent."""
    indent = module.default_indent
    lines = []
    for line in code.splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        lines.append(indent * depth + stripped)
    return cst.parse_statement("\n".join(lines) + "\n", config=module.config_for_parsing)


def needs_parens(parent: cst.CSTNode | None, node: cst.CSTNode) -> bool:
    """Whether an `await` put where `node` is must be parenthesised (`(await x).attr`)."""
    if isinstance(parent, cst.Attribute | cst.Subscript):
        return parent.value is node
    if isinstance(parent, cst.Call):
        return parent.func is node
    return False


def await_in_place(expr: cst.BaseExpression, old: cst.BaseExpression, parens: bool) -> cst.Await:
    """`await expr`, standing where `old` stood: its parentheses, and new ones if `parens`.

    `parens` comes from `needs_parens` on the original tree (node identity is lost
    once a transform has rebuilt the node).
    """
    lpar: list[cst.LeftParen] = list(old.lpar)
    rpar: list[cst.RightParen] = list(old.rpar)
    if not lpar and parens:
        lpar, rpar = [cst.LeftParen()], [cst.RightParen()]
    inner = expr.with_changes(lpar=(), rpar=())
    return cst.Await(expression=inner, lpar=lpar, rpar=rpar)


def short(code: str, limit: int = 70) -> str:
    """`code` on one line (whitespace collapsed), cut to `limit` characters."""
    flat = " ".join(code.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def preview(module: cst.Module, old: cst.CSTNode, new: cst.CSTNode) -> str:
    """ "`old` -> `new`" for a description."""
    return f"`{short(module.code_for_node(old))}` -> `{short(module.code_for_node(new))}`"
