"""`hangdoctor explain`: every catalog entry renders as a readable page, and the list shows all."""

from __future__ import annotations

import io

import pytest
from rich.console import RenderableType

from hangdoctor.catalog import Rule, all_rules, get_rule
from hangdoctor.report.console import TrimmedConsole
from hangdoctor.report.explain import render_rule, render_rule_list, signature

SECTIONS = (
    "What it detects",
    "Why it hangs",
    "Example",
    "Fix",
    "Fix needs Python >=",
    "Automatic fix",
    "Seen in",
    "Stack signature",
)


def render(renderable: RenderableType, width: int) -> str:
    """As `hangdoctor explain` prints it: no padding, example lines whole (`crop=False`)."""
    console = TrimmedConsole(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(renderable, crop=False)
    return console.export_text()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_every_rule_renders(rule: Rule, width: int) -> None:
    """Each entry: title, the sections in order, the bad and good code, the fix and its safety."""
    text = render(render_rule(rule), width)
    words = flat(text)
    assert text.splitlines()[0].strip() == f"{rule.code} {rule.name}"
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions), positions
    assert flat(rule.summary) in words and flat(rule.why) in words
    assert flat(rule.fix) in words and flat(rule.fix_safety) in words
    lines = text.splitlines()
    for code in (rule.bad, rule.good):
        for line in code.splitlines():
            # one screen line each, whole, however wide: the terminal wraps, rich does not
            assert not line.strip() or f"  {line}".rstrip() in lines, line
    assert f"Fix needs Python >= {rule.fix_min_python}" in text


def test_seen_in_follows_the_rule() -> None:
    """Live-and-scan, scan-only and live-only rules each say where they are seen."""
    both, scan_only, live_only = get_rule("HD101"), get_rule("HD301"), get_rule("HD401")
    assert (both.live, both.static, scan_only.live, live_only.static) == (True, True, False, False)
    seen_both = flat(render(render_rule(both), 100).split("Seen in")[1])
    assert "Live capture" in seen_both and "Static scan" in seen_both
    seen_scan = flat(render(render_rule(scan_only), 100).split("Seen in")[1])
    assert "Live capture" not in seen_scan and "Static scan" in seen_scan
    assert "only the static scan finds this cause" in seen_scan
    seen_live = flat(render(render_rule(live_only), 100).split("Seen in")[1])
    assert "Live capture" in seen_live and "Static scan" not in seen_live


def test_stack_signature_lists_frames_and_calls() -> None:
    """HD101's page names its frame patterns (FramePattern.describe) and the calls it matches."""
    rule = get_rule("HD101")
    text = render(render_rule(rule), 120).split("Stack signature", 1)[1]
    for pattern in rule.frames:
        assert f"`{pattern.describe()}`" in text
    for call in rule.calls:
        assert f"`{call}`" in text
    assert "`.shutdown()`" in text


def test_signature_kinds() -> None:
    """signature(): frames one per line, calls as a list, a sentence when there is no matcher."""
    parts = signature(get_rule("HD202"))
    assert [p.one_per_line for p in parts] == [True, False, False]
    assert parts[1].items == get_rule("HD202").calls
    (only,) = signature(get_rule("HD900"))
    assert only.items == () and "across samples" in only.intro


@pytest.mark.parametrize("width", [80, 200])
def test_rule_list(width: int) -> None:
    """`explain --list`: one row per rule with code, name and summary."""
    rules = all_rules()
    text = render(render_rule_list(rules), width)
    words = flat(text)
    assert text.split()[:3] == ["code", "name", "summary"]
    for rule in rules:
        assert f"{rule.code} {rule.name}" in words
        assert rule.summary.split()[0] in words
    rows = [line for line in text.splitlines() if line.startswith("HD")]
    assert [row.split()[0] for row in rows] == [r.code for r in rules]
