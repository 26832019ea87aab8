"""Referring to a stdlib module from a fixed site, and adding its import when missing.

A fix that writes `asyncio.sleep` must use the name under which the file
imported asyncio (`import asyncio as aio` -> `aio.sleep`), must not pick a name
that means something else where the site is, and adds `import asyncio` next to
the file's other standard-library imports when the module is not imported yet.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ImportAssignment

from hangdoctor.fix.context import SourceIndex

__all__ = ["ModuleRef", "add_imports", "add_imports_marked", "module_ref"]

_Stmt = cst.SimpleStatementLine | cst.BaseCompoundStatement


@dataclass(frozen=True)
class ModuleRef:
    """How a fix refers to a module at one site."""

    name: str  # the local name: "asyncio", "aio"
    needs_import: bool  # `import <module>` must be added at the top


def _imports_module(assignment: object, module: str, local: str) -> bool:
    if not isinstance(assignment, ImportAssignment) or not isinstance(assignment.node, cst.Import):
        return False
    for alias in assignment.node.names:
        bound = alias.evaluated_alias or alias.evaluated_name
        if alias.evaluated_name == module and bound == local:
            return True
    return False


def module_ref(index: SourceIndex, site: cst.CSTNode, module: str) -> ModuleRef | str:
    """The name to use for `module` at `site`, or why no name can be trusted there."""
    if module not in index.text:
        # nothing binds the name, nor imports the module under another: what the scopes
        # would say, without working them out for the whole file
        return ModuleRef(module, needs_import=True)
    scope = index.scope(site)
    if scope is None:
        return f"The fixer cannot tell what `{module}` means at this place."
    for local in [module, *index.import_aliases(module)]:
        bindings = scope[local]
        if bindings and all(_imports_module(b, module, local) for b in bindings):
            return ModuleRef(local, needs_import=False)
    if scope[module]:
        return f"The name `{module}` means something else here, so the fixer cannot import it."
    return ModuleRef(module, needs_import=True)


def _stmt_modules(stmt: cst.CSTNode) -> list[str] | None:
    """Top-level module names a statement imports, or None if it is not an import line."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Import):
        return [a.evaluated_name for a in small.names]
    if isinstance(small, cst.ImportFrom):
        if small.relative or small.module is None:
            return ["."]  # a relative import is never standard library
        return [get_full_name_for_node(small.module) or ""]
    return None


def _is_future(stmt: cst.CSTNode) -> bool:
    return _stmt_modules(stmt) == ["__future__"]


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _stdlib(names: Iterable[str]) -> bool:
    return all(n.split(".")[0] in sys.stdlib_module_names for n in names)


def _blank(lines: Sequence[cst.EmptyLine]) -> bool:
    return any(e.comment is None for e in lines)


def _stdlib_block(body: Sequence[_Stmt], start: int) -> tuple[int, int] | None:
    """[first, end) of the first run of standard-library import lines from `start` on."""
    i = start
    while i < len(body):
        mods = _stmt_modules(body[i])
        if mods is None:
            return None
        if _stdlib(mods):
            end = i + 1
            while end < len(body):
                nxt = _stmt_modules(body[end])
                if nxt is None or not _stdlib(nxt) or _blank(body[end].leading_lines):
                    break
                end += 1
            return i, end
        i += 1
    return None


def _sorted_position(body: Sequence[_Stmt], first: int, end: int, module: str) -> int:
    """Where isort puts `import module` in a block: by name among `import x`, before `from`."""
    for k in range(first, end):
        stmt = body[k]
        assert isinstance(stmt, cst.SimpleStatementLine)
        if isinstance(stmt.body[0], cst.ImportFrom):
            return k
        if (_stmt_modules(stmt) or [""])[0] > module:
            return k
    return end


def _import_line(module: str, leading: Sequence[cst.EmptyLine] = ()) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine(
        body=[cst.Import(names=[cst.ImportAlias(name=cst.Name(module))])],
        leading_lines=leading,
    )


def _add_one(body: list[_Stmt], module: str) -> cst.SimpleStatementLine:
    start = 1 if body and _is_docstring(body[0]) else 0
    while start < len(body) and _is_future(body[start]):
        start += 1
    block = _stdlib_block(body, start)
    if block is not None:
        first, end = block
        at = _sorted_position(body, first, end, module)
        if at == first:
            # the new first line of the block takes the block's blank lines and comments
            line = _import_line(module, body[first].leading_lines)
            body[first] = body[first].with_changes(leading_lines=())
        else:
            line = _import_line(module)
        body.insert(at, line)
        return line
    # no standard-library block: a block of its own after the docstring and __future__
    if start == len(body):
        line = _import_line(module, (cst.EmptyLine(),) if body else ())
        body.append(line)
        return line
    nxt = body[start]
    lines = list(nxt.leading_lines)
    blank_prefix = []
    while lines and lines[0].comment is None:
        blank_prefix.append(lines.pop(0))
    is_def = isinstance(nxt, cst.FunctionDef | cst.ClassDef)
    gap = max(len(blank_prefix), 2 if is_def else 1)
    body[start] = nxt.with_changes(leading_lines=[cst.EmptyLine()] * gap + lines)
    line = _import_line(module, blank_prefix if start > 0 else ())
    body.insert(start, line)
    return line


def add_imports(module: cst.Module, modules: Iterable[str]) -> cst.Module:
    """`module` with `import <m>` added for every `m`, placed where isort would put it."""
    return add_imports_marked(module, modules)[0]


def add_imports_marked(
    module: cst.Module, modules: Iterable[str]
) -> tuple[cst.Module, list[cst.SimpleStatementLine]]:
    """`add_imports`, and the statements it added (so later steps can tell them apart)."""
    body = list(module.body)
    added: list[cst.SimpleStatementLine] = []
    for name in sorted(set(modules)):
        added.append(_add_one(body, name))
    return module.with_changes(body=body), added
