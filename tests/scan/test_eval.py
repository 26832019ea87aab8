"""Eval files: every `# error: HDxxx` line is reported with that code, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scan.conftest import DATA, expected_markers, phase_markers, run_scan

EVAL_FILES = sorted(DATA.glob("*.py"))


def test_every_static_code_has_an_eval_file() -> None:
    """Each code the scan can find is exercised by at least one marker."""
    from hangdoctor.catalog import all_rules

    marked = {code for f in EVAL_FILES for _, code in expected_markers(f)}
    assert marked == {r.code for r in all_rules() if r.static}


@pytest.mark.parametrize("path", EVAL_FILES, ids=lambda p: p.stem)
def test_eval_file(path: Path) -> None:
    """The findings on one eval file are exactly its markers: none missing, none extra."""
    result = run_scan([path], DATA)
    assert result.problems == ()
    found = {(f.line, f.code) for f in result.findings}
    expected = expected_markers(path)
    missing = sorted(expected - found)
    extra = sorted(
        (f.line, f.code, f.message) for f in result.findings if (f.line, f.code) not in expected
    )
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    # startup and shutdown code: shown apart, with its phase
    apart = {(f.line, f.code, f.phase) for f in result.lifecycle}
    assert apart == phase_markers(path)
