"""Dropping the imports a fix made unused: `import time` after the last `time.sleep` goes.

A fix that takes away a use of an imported name (HD201 turns `time.sleep(x)`
into `asyncio.sleep(x)`, HD101 drops `ThreadPoolExecutor(...)`) removes that
name's import when nothing uses it any more, so the fixed file stays clean
under `ruff check` (F401). Several fixes in one file may each drop a use, so
this runs once on the fixed module, comparing it with the original one.

What is removed, and what stays (docs/fixes.md says the same to users):
- Only an import that was used before the fix and is used nowhere after it,
  so an import that was already unused (the user's business) stays.
- Only the one alias (`from time import monotonic, sleep` keeps `monotonic`);
  the statement goes when none of its aliases is left.
- Only standard-library modules: importing them has no side effect a program
  relies on. A third-party import may register plugins or patch things when it
  runs, which the fixer cannot see, so it stays (no fix drops such a use today:
  `await asyncio.to_thread(get, url)` still uses `get`).
- Never a re-export: `from x import y as y`, `import x as x`, or a name listed
  in `__all__`.
- Never a name still written anywhere in the module (outside imports, attribute
  names and keyword names), even where scope analysis says it means another
  binding: being wrong there would break the file.
- Only imports at module level or directly in a function body: an import inside
  `if`/`try`/`with`/a class is a deliberate choice (a fallback, a guard).
- Comment lines above a removed line move to the next statement; the removed
  line's own trailing comment goes with it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ImportAssignment

from hangdoctor.fix.context import SourceIndex

__all__ = ["imported_aliases", "remove_unused_imports"]

_Import = cst.Import | cst.ImportFrom
_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_B = TypeVar("_B", cst.Module, cst.IndentedBlock)


@dataclass(frozen=True)
class _Alias:
    alias: cst.ImportAlias
    stmt: _Import
    bound: str  # the name the alias binds, as libcst's scopes record it: "t", "concurrent.futures"
    removable_place: bool  # at module level or directly in a function body


def _bound(alias: cst.ImportAlias) -> str:
    return alias.evaluated_alias or alias.evaluated_name


def _module_of(stmt: _Import, alias: cst.ImportAlias) -> str | None:
    """The module an alias is imported from ("time", "concurrent.futures"); None if relative."""
    if isinstance(stmt, cst.Import):
        return alias.evaluated_name
    if stmt.relative or stmt.module is None:
        return None
    return get_full_name_for_node(stmt.module)


def _stdlib(stmt: _Import, alias: cst.ImportAlias) -> bool:
    module = _module_of(stmt, alias)
    return module is not None and module.split(".")[0] in sys.stdlib_module_names


def _reexport(alias: cst.ImportAlias) -> bool:
    """`import x as x` / `from m import y as y`: the typing convention for a re-export."""
    return alias.asname is not None and alias.evaluated_alias == alias.evaluated_name.split(".")[-1]


class _Collect(cst.CSTVisitor):
    """Import aliases in source order, with where their statement sits."""

    def __init__(self, skip: Collection[cst.CSTNode]) -> None:
        super().__init__()
        self._skip = skip
        self._holders: list[cst.CSTNode] = []  # enclosing compound statements
        self.found: list[tuple[cst.ImportAlias, _Import, bool]] = []
        self.written: set[str] = set()  # names written outside imports
        self.exported: set[str] = set()  # strings in `__all__`

    def _enter(self, node: cst.CSTNode) -> None:
        self._holders.append(node)

    def _leave(self, node: cst.CSTNode) -> None:
        self._holders.pop()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.BaseCompoundStatement):
            self._enter(node)
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, cst.BaseCompoundStatement):
            self._leave(original_node)
        super().on_leave(original_node)

    def _place_ok(self) -> bool:
        return not self._holders or isinstance(self._holders[-1], cst.FunctionDef)

    def visit_Import(self, node: cst.Import) -> bool:
        if node not in self._skip:
            ok = self._place_ok()
            self.found.extend((a, node, ok) for a in node.names)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if node not in self._skip and not isinstance(node.names, cst.ImportStar):
            ok = self._place_ok()
            self.found.extend((a, node, ok) for a in node.names)
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)  # `x.sleep`: `sleep` is an attribute, not the name `sleep`
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)  # `f(time=1)`: a keyword, not the name `time`
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.written.add(node.value)

    def visit_Annotation(self, node: cst.Annotation) -> None:
        # `x: "time.struct_time"`: a name used in a string annotation is used
        for text in _string_literals(node):
            self.written.update(_IDENTIFIER.findall(text))

    def visit_Assign(self, node: cst.Assign) -> None:
        if any(
            isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in node.targets
        ):
            self._strings(node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name) and node.target.value == "__all__":
            self._strings(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        target = node.target
        if isinstance(target, cst.Name) and target.value == "__all__" and node.value is not None:
            self._strings(node.value)

    def _strings(self, value: cst.BaseExpression) -> None:
        for s in _string_literals(value):
            self.exported.add(s)


def _string_literals(value: cst.CSTNode) -> list[str]:
    found: list[str] = []

    class _Find(cst.CSTVisitor):
        def visit_SimpleString(self, node: cst.SimpleString) -> None:
            evaluated = node.evaluated_value
            if isinstance(evaluated, str):
                found.append(evaluated)

    value.visit(_Find())
    return found


def _aliases(module: cst.Module, skip: Collection[cst.CSTNode]) -> tuple[_Collect, list[_Alias]]:
    """What the module writes, and its import aliases in source order."""
    collect = _Collect(skip)
    module.visit(collect)
    aliases = [_Alias(alias, stmt, _bound(alias), ok) for alias, stmt, ok in collect.found]
    return collect, aliases


def _doomed(
    original: cst.Module,
    fixed: cst.Module,
    used: Collection[cst.ImportAlias],
    skip: Collection[cst.CSTNode],
) -> set[cst.ImportAlias]:
    """The aliases of `fixed` to remove: counterparts of `used` nothing needs any more.

    No scope analysis here (it would double the cost of a fix): the plans named
    the imports their code used (`imported_aliases`, on the original's scopes),
    and a name still written anywhere in the fixed module keeps its import.
    """
    _, before = _aliases(original, ())
    seen, after = _aliases(fixed, skip)
    if [a.bound for a in before] != [a.bound for a in after]:
        return set()  # the fix moved imports around: do not guess which is which
    doomed: set[cst.ImportAlias] = set()
    for old, new in zip(before, after, strict=True):
        if (
            old.alias in used
            and new.removable_place
            and _stdlib(new.stmt, new.alias)
            and not _reexport(new.alias)
            and new.bound not in seen.exported
            and new.bound.split(".")[0] not in seen.written
        ):
            doomed.add(new.alias)
    return doomed


def imported_aliases(
    index: SourceIndex, name: cst.Name | cst.Attribute
) -> tuple[cst.ImportAlias, ...]:
    """The import aliases `name` (`time`, `cf`, `concurrent.futures`) refers to at its place.

    Empty unless every binding it may refer to is an import: a name also assigned
    some other way is not the fixer's to clean up.
    """
    dotted = get_full_name_for_node(name)
    scope = index.scope(name)
    if scope is None or dotted is None:
        return ()
    found: list[cst.ImportAlias] = []
    for assignment in scope[dotted]:
        if not isinstance(assignment, ImportAssignment):
            return ()
        stmt = assignment.node
        if not isinstance(stmt, _Import) or isinstance(stmt.names, cst.ImportStar):
            return ()
        found += [a for a in stmt.names if _bound(a) == assignment.name]
    return tuple(found)


def _without(
    small: cst.BaseSmallStatement, doomed: set[cst.ImportAlias]
) -> cst.BaseSmallStatement | None:
    """`small` minus the doomed aliases (None when none is left); `small` when it keeps all."""
    if not isinstance(small, _Import) or isinstance(small.names, cst.ImportStar):
        return small
    names = list(small.names)
    keep = [a for a in names if a not in doomed]
    if len(keep) == len(names):
        return small
    if not keep:
        return None
    if keep[-1] is not names[-1]:
        keep[-1] = keep[-1].with_changes(comma=_last_comma(keep[-1].comma, names[-1].comma))
    return small.with_changes(names=keep)


def _last_comma(
    own: cst.Comma | cst.MaybeSentinel, last: cst.Comma | cst.MaybeSentinel
) -> cst.Comma | cst.MaybeSentinel:
    """The comma of an alias that becomes the last one, in the style of the removed last one.

    No trailing comma before: none now. A trailing comma: the alias keeps its own
    (with its comment) but ends its line the way the old last alias did, so the
    closing parenthesis stays where it was.
    """
    if not isinstance(last, cst.Comma):
        return cst.MaybeSentinel.DEFAULT
    if not isinstance(own, cst.Comma):
        return last
    mine, theirs = own.whitespace_after, last.whitespace_after
    if isinstance(mine, cst.ParenthesizedWhitespace) and isinstance(
        theirs, cst.ParenthesizedWhitespace
    ):
        return own.with_changes(
            whitespace_after=mine.with_changes(indent=theirs.indent, last_line=theirs.last_line)
        )
    return own.with_changes(whitespace_after=theirs)


def _prune(
    original: Sequence[cst.BaseStatement],
    updated: Sequence[cst.BaseStatement],
    doomed: set[cst.ImportAlias],
) -> tuple[list[cst.BaseStatement], list[cst.EmptyLine]] | None:
    """The block's statements without the doomed aliases, and comment lines left over.

    None when nothing changes or the block would be left empty.
    """
    out: list[cst.BaseStatement] = []
    carry: list[cst.EmptyLine] = []
    changed = strip_next = False
    for old, stmt in zip(original, updated, strict=True):
        assert isinstance(stmt, cst.SimpleStatementLine | cst.BaseCompoundStatement)
        new: cst.SimpleStatementLine | cst.BaseCompoundStatement = stmt
        if isinstance(old, cst.SimpleStatementLine) and isinstance(new, cst.SimpleStatementLine):
            smalls = [_without(s, doomed) for s in old.body]
            if any(s is not o for s, o in zip(smalls, old.body, strict=True)):
                changed = True
                kept = [
                    n if s is o else s
                    for s, o, n in zip(smalls, old.body, new.body, strict=True)
                    if s is not None
                ]
                if not kept:
                    # the whole line goes; its comment lines stay, for the next statement
                    if any(e.comment is not None for e in new.leading_lines):
                        carry.extend(new.leading_lines)
                    strip_next = strip_next or not out
                    continue
                kept[-1] = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
                new = new.with_changes(body=kept)
        if carry:
            new = new.with_changes(leading_lines=[*carry, *new.leading_lines])
            carry = []
        elif strip_next and not out:
            # the block must not start with the blank lines that followed the removed import
            lines = list(new.leading_lines)
            while lines and lines[0].comment is None:
                lines.pop(0)
            new = new.with_changes(leading_lines=lines)
        out.append(new)
    if not changed or not out:
        return None
    return out, carry


class _Remove(cst.CSTTransformer):
    def __init__(self, doomed: set[cst.ImportAlias]) -> None:
        super().__init__()
        self._doomed = doomed

    def _block(self, original: _B, updated: _B) -> _B:
        pruned = _prune(original.body, updated.body, self._doomed)
        if pruned is None:
            return updated
        body: list[cst.BaseStatement] = pruned[0]
        left: list[cst.EmptyLine] = pruned[1]
        return updated.with_changes(body=body, footer=[*left, *updated.footer])

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return self._block(original_node, updated_node)

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return self._block(original_node, updated_node)


def remove_unused_imports(
    original: cst.Module,
    fixed: cst.Module,
    used: Collection[cst.ImportAlias],
    added: Collection[cst.CSTNode] = (),
) -> cst.Module:
    """`fixed` without the imports in `used` that the fixes made unused (see the module doc).

    `used` are aliases of `original` (the module before the fixes) whose name the
    fixed code used; `added` are the import statements the fixes added, which
    have no counterpart in `original`.
    """
    if not used:
        return fixed
    skip = {s.body[0] for s in added if isinstance(s, cst.SimpleStatementLine) and s.body}
    doomed = _doomed(original, fixed, used, skip)
    if not doomed:
        return fixed
    return fixed.visit(_Remove(doomed))
