"""What the fixers know about one module: positions, parents, names, scopes, async-ness.

Built once per `fix_source` call on the parsed module; every fixer asks it
where a site is and whether the code there runs on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

import libcst as cst
from libcst.metadata import (
    CodeRange,
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    Scope,
    ScopeProvider,
)

__all__ = ["SourceIndex", "indexed"]

_N = TypeVar("_N", bound=cst.CSTNode)


class _Scopes(cst.MetadataDependent):
    """The scopes of a module's nodes, resolved when `SourceIndex` first asks."""

    METADATA_DEPENDENCIES = (ScopeProvider,)


class _QualifiedNames(cst.MetadataDependent):
    """The qualified names of a module's nodes, resolved when `SourceIndex` first asks."""

    METADATA_DEPENDENCIES = (QualifiedNameProvider,)


_Lazy = TypeVar("_Lazy", _Scopes, _QualifiedNames)


class SourceIndex(cst.MetadataDependent):
    """Metadata lookups over one parsed module (valid inside `indexed`)."""

    # No ParentNodeProvider: `_build` maps each node's children to it, as that provider
    # does, in a third of its time (libcst's visitor dispatch is most of a provider's cost).
    # Scopes and qualified names only when first asked (`scope`, `qualified_names`): most
    # wraps in a thread ask for neither (`fix.imports.module_ref`), and they were two
    # thirds of a dry run behind the scan's marks.
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, wrapper: MetadataWrapper, text: str) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.module = wrapper.module
        self.text = text
        self._lines = text.split("\n")
        self._by_line: dict[int, list[tuple[cst.CSTNode, int]]] = {}
        self._imports: list[cst.Import] = []
        self._parents: dict[cst.CSTNode, cst.CSTNode] = {}
        self._scopes: _Scopes | None = None
        self._names: _QualifiedNames | None = None

    def _resolved(self, kind: type[_Lazy]) -> _Lazy:
        lazy = kind()
        lazy.metadata = self.wrapper.resolve_many(kind.METADATA_DEPENDENCIES)
        return lazy

    def _build(self) -> None:
        parents = self._parents
        todo: list[cst.CSTNode] = [self.module]
        while todo:
            node = todo.pop()
            for child in node.children:
                parents[child] = node
                todo.append(child)
        for node, rng in self.metadata[PositionProvider].items():
            if isinstance(node, cst.With | cst.Call):
                start = cast(CodeRange, rng).start
                self._by_line.setdefault(start.line, []).append((node, start.column))
            elif isinstance(node, cst.Import):
                self._imports.append(node)

    def import_aliases(self, module: str) -> list[str]:
        """The local names under which `module` is imported (`import m as x`) anywhere in
        the file, in order (from the nodes `_build` listed: no walk of the tree per site)."""
        return [
            alias.evaluated_alias
            for node in self._imports
            for alias in node.names
            if alias.evaluated_name == module and alias.evaluated_alias
        ]

    # -- where things are -------------------------------------------------------------

    def range(self, node: cst.CSTNode) -> CodeRange:
        rng: CodeRange = self.get_metadata(PositionProvider, node)
        return rng

    def line(self, node: cst.CSTNode) -> int:
        return self.range(node).start.line

    def find(self, kind: type[_N], line: int, col: int, accept: Callable[[_N], bool]) -> list[_N]:
        """Nodes of `kind` starting at line:col that `accept` (outermost first).

        `col` may count code points (libcst) or UTF-8 bytes (ast); when neither
        matches, a single accepted node on that line is taken.
        """
        text = self._lines[line - 1] if 0 < line <= len(self._lines) else ""
        on_line: list[tuple[_N, int]] = [
            (n, c) for n, c in self._by_line.get(line, []) if isinstance(n, kind) and accept(n)
        ]
        exact = [n for n, c in on_line if col in (c, len(text[:c].encode("utf-8")))]
        if exact:
            return exact
        if len(on_line) == 1:
            return [on_line[0][0]]
        return []

    # -- structure --------------------------------------------------------------------

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self._parents.get(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        current = self.parent(node)
        while current is not None:
            yield current
            current = self.parent(current)

    def code(self, node: cst.CSTNode) -> str:
        """The source of `node` as written (without leading lines)."""
        return self.module.code_for_node(node)

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, cst.FunctionDef):
                return anc
            if isinstance(anc, cst.Lambda | cst.ClassDef):
                return None
        return None

    def not_async_reason(self, node: cst.CSTNode) -> str | None:
        """None when `node` runs directly in a coroutine's body, else why it does not."""
        for anc in self.ancestors(node):
            if isinstance(anc, cst.GeneratorExp):
                return (
                    "it sits inside a generator expression, where `await` would turn it "
                    "into an async generator"
                )
            if isinstance(anc, cst.Lambda):
                return "it sits inside a lambda, which is not async code"
            if isinstance(anc, cst.ClassDef):
                return "it sits in a class body, which is not async code"
            if isinstance(anc, cst.FunctionDef):
                if anc.asynchronous is None:
                    return f"it sits in the sync function `{anc.name.value}`, not in async code"
                return None
        return "it is at module level, not in async code"

    # -- names ------------------------------------------------------------------------

    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        if self._names is None:
            self._names = self._resolved(_QualifiedNames)
        names = self._names.get_metadata(QualifiedNameProvider, node, set())
        return frozenset(q.name for q in names)

    def scope(self, node: cst.CSTNode) -> Scope | None:
        if self._scopes is None:
            self._scopes = self._resolved(_Scopes)
        scope: Scope | None = self._scopes.get_metadata(ScopeProvider, node, None)
        return scope


@contextmanager
def indexed(module: cst.Module, text: str) -> Iterator[SourceIndex]:
    """A `SourceIndex` over `module` (`text` is its `\\n`-normalised source).

    `module` is the index's own from then on (`SourceIndex.module`): the wrapper does
    not copy it first (a copy of every node, a tenth of the fixer's time on a file),
    so the caller must not change it or hand it to another wrapper.
    """
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    index = SourceIndex(wrapper, text)
    with index.resolve(wrapper):
        index._build()
        yield index
