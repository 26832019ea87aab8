"""docs/rules/ is generated from the catalog, committed, and kept current."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hangdoctor.catalog import Rule, all_rules
from hangdoctor.report.docs import (
    check_docs,
    default_directory,
    index_markdown,
    rule_markdown,
    write_docs,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "rules"
HEADINGS = (
    "## What it does",
    "## Why is this bad?",
    "## Example",
    "## Use instead",
    "## Fix",
    "## Fix safety",
    "## Minimum Python for the fix",
    "## Seen in",
    "## Stack signature",
)


def test_committed_docs_are_current() -> None:
    """The committed docs/rules match the catalog (run `python -m hangdoctor.report.docs`)."""
    assert default_directory() == COMMITTED
    assert check_docs(COMMITTED) == []


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_every_rule_has_a_page(rule: Rule) -> None:
    """Each rule has docs/rules/CODE.md with the title, all sections in order, and both examples."""
    text = (COMMITTED / f"{rule.code}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {rule.name} ({rule.code})\n")
    positions = [text.index(f"\n{h}\n") for h in HEADINGS]
    assert positions == sorted(positions)
    assert f"```python\n{rule.bad.rstrip()}\n```" in text
    assert f"```python\n{rule.good.rstrip()}\n```" in text
    assert rule.why in text and rule.fix in text and rule.fix_safety in text
    assert f"Python >= {rule.fix_min_python}." in text


def test_index_links_every_rule() -> None:
    """README.md links every page, with its name and summary."""
    text = (COMMITTED / "README.md").read_text(encoding="utf-8")
    for rule in all_rules():
        assert f"| [{rule.code}]({rule.code}.md) | {rule.name} | {rule.summary} |" in text


def test_regenerating_is_byte_identical(tmp_path: Path) -> None:
    """Writing the docs anew gives the committed bytes; a second write changes nothing."""
    written = write_docs(tmp_path / "rules")
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in COMMITTED.iterdir())
    for path in written:
        assert path.read_bytes() == (COMMITTED / path.name).read_bytes(), path.name
    first = {p.name: p.read_bytes() for p in written}
    again = write_docs(tmp_path / "rules")
    assert {p.name: p.read_bytes() for p in again} == first


def test_generation_is_pure() -> None:
    """The same rule gives the same text every time; pages end with exactly one newline."""
    rules = all_rules()
    assert index_markdown(rules) == index_markdown(rules)
    for rule in rules:
        page = rule_markdown(rule)
        assert page == rule_markdown(rule)
        assert page.endswith("\n") and not page.endswith("\n\n")


def test_check_finds_stale_missing_and_extra(tmp_path: Path) -> None:
    """check_docs names a changed page, a deleted page and a page of a removed rule."""
    rules = tmp_path / "rules"
    shutil.copytree(COMMITTED, rules)
    (rules / "HD101.md").write_text("# stale\n", encoding="utf-8")
    (rules / "HD201.md").unlink()
    (rules / "HD999.md").write_text("# removed rule\n", encoding="utf-8")
    (rules / "diagram.png").write_bytes(b"\x89PNG")
    assert check_docs(rules) == ["HD101.md", "HD201.md", "HD999.md"]
    write_docs(rules)
    assert check_docs(rules) == []
    assert not (rules / "HD999.md").exists()
    assert (rules / "diagram.png").exists(), "files that are not rule pages are left alone"


def test_check_of_an_empty_directory(tmp_path: Path) -> None:
    """A directory that does not exist: every page is missing."""
    missing = check_docs(tmp_path / "nowhere")
    assert sorted(missing) == sorted([f"{r.code}.md" for r in all_rules()] + ["README.md"])


def _docs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hangdoctor.report.docs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    """`python -m hangdoctor.report.docs --check DIR`: 1 naming stale pages, 0 once written."""
    rules = tmp_path / "rules"
    shutil.copytree(COMMITTED, rules)
    (rules / "HD102.md").write_text("edited by hand\n", encoding="utf-8")
    stale = _docs_cli("--check", str(rules))
    assert stale.returncode == 1
    assert "HD102.md (stale)" in stale.stderr
    assert f"run `python -m hangdoctor.report.docs {rules}`" in stale.stderr
    wrote = _docs_cli(str(rules))
    assert wrote.returncode == 0, wrote.stderr
    current = _docs_cli("--check", str(rules))
    assert current.returncode == 0, current.stderr
    assert "current" in current.stdout


def test_cli_default_directory_is_the_checkout() -> None:
    """Without DIR, --check looks at this checkout's docs/rules."""
    proc = _docs_cli("--check")
    assert proc.returncode == 0, proc.stderr
    assert str(COMMITTED) in proc.stdout
