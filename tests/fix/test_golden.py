"""Golden cases: every fix applied to before.py gives exactly after.py and fix.diff."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest
from tests.fix.golden import REGEN, diff_of, load, names, regenerate

CASES = names()
ROOT = Path(__file__).resolve().parents[2]


def test_there_is_a_golden_case_per_fix() -> None:
    """The golden set covers every fix and the skip cases."""
    assert len(CASES) >= 12
    for needed in ("hd101_sse_generator", "hd101_py38", "hd201_aliases", "skip_cases"):
        assert needed in CASES


@pytest.mark.parametrize("name", CASES)
def test_fix_matches_golden_after_and_diff(name: str) -> None:
    """Applying the case's sites to before.py gives the committed after.py and fix.diff."""
    case = load(name)
    if REGEN:
        regenerate(case)
    outcome = case.run()
    after = (case.dir / "after.py").read_text(encoding="utf-8")
    assert outcome.text == after
    assert diff_of(case, outcome.text) == (case.dir / "fix.diff").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_applied_and_skipped_are_reported(name: str) -> None:
    """Each case applies the expected codes and skips the others with the expected reason."""
    case = load(name)
    outcome = case.run()
    assert [a.code for a in outcome.applied] == case.spec["applied"]
    got = {(s.code, s.line): s.reason for s in outcome.skipped}
    assert len(got) == len(case.spec["skipped"]), got
    for code, line, needle in case.spec["skipped"]:
        assert needle in got[(code, line)], got[(code, line)]
    for reason in got.values():
        assert (reason[0].isupper() or reason[0] == "`") and reason.endswith("."), reason
    if "description" in case.spec:
        assert case.spec["description"] in outcome.applied[0].description
    unsafe = {a.safe for a in outcome.applied}
    assert unsafe <= ({False} if case.unsafe else {True})


@pytest.mark.parametrize("name", CASES)
def test_fix_is_idempotent(name: str) -> None:
    """Running the fix again on its own output (same sites) changes nothing."""
    case = load(name)
    once = case.run()
    twice = case.run(once.text)
    assert twice.text == once.text
    assert twice.applied == ()


@pytest.mark.parametrize("name", CASES)
def test_fixed_code_reparses(name: str) -> None:
    """The fixed text parses with both libcst and ast, and compiles."""
    text = load(name).run().text
    cst.parse_module(text)
    compile(ast.parse(text), name, "exec")


HD101_CASES = [name for name in CASES if name.startswith("hd101_")]


@pytest.mark.parametrize("name", HD101_CASES)
def test_hd101_fixed_code_is_lint_clean(name: str) -> None:
    """Every HD101 golden after.py passes `ruff check` with the project's rules: the fix
    leaves no unused executor import behind (tests/data is excluded only from the
    project's own lint run, which a file named on the command line is not)."""
    after = load(name).dir / "after.py"
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run(
        [str(ruff), "check", "--no-cache", str(after)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
