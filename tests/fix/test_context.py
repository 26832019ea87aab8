"""SourceIndex: the parents it maps itself are those libcst's ParentNodeProvider gives."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider
from tests.fix.nodes import calls_in

from hangdoctor.fix.context import indexed
from hangdoctor.fix.imports import ModuleRef, module_ref

FIXES = Path(__file__).resolve().parents[1] / "data" / "fixes"
SOURCES = sorted([*FIXES.glob("*/before.py"), *FIXES.glob("*/after.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_node_has_the_parent_libcst_gives(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    module = cst.parse_module(text)
    theirs = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ParentNodeProvider)
    assert len(theirs) > 50
    with indexed(module, text) as index:
        for node, parent in theirs.items():
            assert index.parent(node) is parent
        assert index.parent(module) is None


def test_sources_are_found() -> None:
    """The cases above are the fixer's golden files, not an empty list that passes."""
    assert len(SOURCES) >= 20


EVAL = Path(__file__).resolve().parents[1] / "data" / "scan"
# every source, with `asyncio` renamed where it is written: modules of every shape (nested
# functions, classes, comprehensions, lambdas) that never name it
WITHOUT_ASYNCIO = sorted([*SOURCES, *EVAL.glob("*.py")])


@pytest.mark.parametrize("path", WITHOUT_ASYNCIO, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_module_never_named_in_the_text_is_bound_nowhere(path: Path) -> None:
    """What `module_ref` answers without the scopes when the text never names the module:
    the scopes of every call say the same (no binding, no alias), so it must be imported."""
    text = path.read_text(encoding="utf-8").replace("asyncio", "aio_lib")
    module = cst.parse_module(text)
    calls = calls_in(module)
    assert calls
    with indexed(module, text) as index:
        assert index.import_aliases("asyncio") == []
        for call in calls:
            scope = index.scope(call)
            assert scope is not None and not scope["asyncio"]
            assert module_ref(index, call, "asyncio") == ModuleRef("asyncio", needs_import=True)


def test_with_asyncio_named_the_scopes_are_asked() -> None:
    """The other way: a module that imports asyncio gets its name from the scopes."""
    text = "import asyncio as aio\n\n\nasync def f():\n    g()\n"
    module = cst.parse_module(text)
    with indexed(module, text) as index:
        assert module_ref(index, calls_in(module)[0], "asyncio") == ModuleRef("aio", False)
