"""SourceIndex: the parents it maps itself are those libcst's ParentNodeProvider gives."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider

from hangdoctor.fix.context import indexed

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
