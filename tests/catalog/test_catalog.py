"""The catalog is complete and well-formed: every cause written down once, fully."""

from __future__ import annotations

import ast
import re

import pytest

from hangdoctor.catalog import RULES, all_rules, get_rule
from hangdoctor.errors import UnknownRuleError

REQUIRED = {
    "HD101", "HD102", "HD201", "HD202", "HD203", "HD204", "HD205", "HD206", "HD207",
    "HD301", "HD302", "HD401", "HD501", "HD900",
    "HD601", "HD602", "HD603", "HD604", "HD605", "HD606",
}  # fmt: skip


def test_required_codes() -> None:
    """Every code the diagnosis issue names exists."""
    assert set(RULES) >= REQUIRED


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_entry_is_complete(rule) -> None:  # type: ignore[no-untyped-def]
    """Each entry has a kebab name, summary, why, fix, min Python, and examples that parse."""
    assert re.fullmatch(r"HD\d{3}", rule.code)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", rule.name)
    assert rule.summary.endswith(".") and len(rule.summary) < 100
    assert len(rule.why) > 80 and rule.fix and rule.fix_safety and rule.family
    assert rule.fix_min_python and re.fullmatch(r"3\.\d+", rule.fix_min_python)
    ast.parse(rule.bad)
    ast.parse(rule.good)
    assert rule.bad != rule.good


@pytest.mark.parametrize(
    "rule",
    [
        r
        for r in all_rules()
        if r.live
        and r.code not in ("HD401", "HD501", "HD900")
        # HD6xx: recognised from a process's tasks (their await chains, what each waits
        # on, who holds it: analysis/tasks.py), not from thread stacks, so no signature
        and not r.code.startswith("HD6")
    ],
    ids=lambda r: r.code,
)
def test_live_rules_have_a_signature(rule) -> None:  # type: ignore[no-untyped-def]
    """A live-visible cause is recognisable from a stack: library frames or calls at the line."""
    assert rule.frames or rule.calls or rule.methods


def test_names_are_unique() -> None:
    """No two entries share a name."""
    names = [r.name for r in all_rules()]
    assert len(names) == len(set(names))


def test_lookup_by_code_and_name() -> None:
    """Codes are case-insensitive; the kebab name works too; unknown codes say what exists."""
    assert get_rule("hd101").code == "HD101"
    assert get_rule("time-sleep-in-async").code == "HD201"
    with pytest.raises(UnknownRuleError) as exc:
        get_rule("HD999")
    assert "HD101" in exc.value.remedy
