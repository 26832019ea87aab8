"""docs/rules/: one Markdown page per catalog entry, plus an index, generated from the catalog.

A cause is written down once, in the catalog; these pages are derived from it
and checked in CI. Regenerate with `python -m hangdoctor.report.docs`; check
with `python -m hangdoctor.report.docs --check` (exit 1 when stale).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from hangdoctor.catalog import Rule, all_rules
from hangdoctor.report.explain import fix_python, seen_in, signature

__all__ = [
    "check_docs",
    "default_directory",
    "index_markdown",
    "main",
    "rule_markdown",
    "write_docs",
]

INDEX = "README.md"
_PAGE = re.compile(r"^HD\d{3}\.md$")
_REGENERATE = "python -m hangdoctor.report.docs"
_BANNER = f"<!-- Generated from the hangdoctor catalog by `{_REGENERATE}`. Do not edit. -->"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _code(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


def rule_markdown(rule: Rule) -> str:
    """The page for one rule, structured like a linter's rule page."""
    out: list[str] = [f"# {rule.name} ({rule.code})", "", _BANNER, ""]
    if rule.family:
        out += [f"Family: {_sentence(rule.family)}", ""]
    out += ["## What it does", "", rule.summary, ""]
    out += ["## Why is this bad?", "", rule.why, ""]
    out += ["## Example", "", _code(rule.bad), ""]
    out += ["## Use instead", "", _code(rule.good), ""]
    out += ["## Fix", "", rule.fix, ""]
    out += ["## Fix safety", "", rule.fix_safety or "No automatic fix.", ""]
    out += ["## Minimum Python for the fix", "", f"{_sentence(fix_python(rule))}.", ""]
    out += ["## Seen in", ""] + [f"- {place}" for place in seen_in(rule)] + [""]
    out += ["## Stack signature", ""]
    for part in signature(rule):
        out.append(part.intro + (":" if part.items else "."))
        out.append("")
        if part.items:
            out += [f"- `{item}`" for item in part.items] + [""]
    out += ["## See also", "", f"`hangdoctor explain {rule.code}` prints this page in a terminal."]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def index_markdown(rules: Iterable[Rule]) -> str:
    """The index page: every rule by family, with where it can be seen."""
    out: list[str] = ["# Rule catalog", "", _BANNER, ""]
    out += [
        "Each cause of a hang that hangdoctor names has a stable code. "
        "`hangdoctor explain CODE` prints an entry; `hangdoctor explain --list` lists them.",
        "",
        "*Live*: seen in a capture of a running process (`diagnose`, `analyze`, the "
        "watchdog). *Scan*: found in source code by `hangdoctor scan`.",
        "",
    ]
    families: dict[str, list[Rule]] = {}
    for rule in rules:
        families.setdefault(rule.family, []).append(rule)
    for family, members in families.items():
        if family:
            out += [f"## {_sentence(family).rstrip('.')}", ""]
        out += ["| Code | Name | Summary | Live | Scan |", "| --- | --- | --- | --- | --- |"]
        for r in members:
            live, scan = ("yes" if r.live else "no"), ("yes" if r.static else "no")
            row = f"| [{r.code}]({r.code}.md) | {r.name} | {_cell(r.summary)} | {live} | {scan} |"
            out.append(row)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _expected(rules: Sequence[Rule]) -> dict[str, str]:
    pages = {f"{rule.code}.md": rule_markdown(rule) for rule in rules}
    pages[INDEX] = index_markdown(rules)
    return pages


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _status(directory: Path) -> list[tuple[str, str]]:
    """(file name, 'missing' | 'stale' | 'extra') for every file that is not current."""
    expected = _expected(all_rules())
    problems: list[tuple[str, str]] = []
    for name, text in expected.items():
        on_disk = _read(directory / name)
        if on_disk is None:
            problems.append((name, "missing"))
        elif on_disk != text:
            problems.append((name, "stale"))
    if directory.is_dir():
        for path in directory.iterdir():
            if _PAGE.match(path.name) and path.name not in expected:
                problems.append((path.name, "extra"))
    return sorted(problems)


def check_docs(directory: Path) -> list[str]:
    """Names of the files in `directory` that are missing, stale, or left from a removed rule."""
    return [name for name, _ in _status(directory)]


def write_docs(directory: Path) -> list[Path]:
    """Write every page (only those that changed), remove pages of removed rules; all pages."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in _expected(all_rules()).items():
        path = directory / name
        if _read(path) != text:
            path.write_bytes(text.encode("utf-8"))  # bytes: the same "\n" on every platform
        written.append(path)
    for name, state in _status(directory):
        if state == "extra":
            (directory / name).unlink()
    return sorted(written)


def default_directory() -> Path | None:
    """docs/rules of the source checkout this module runs from; None when installed."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "hangdoctor").is_dir():
        return root / "docs" / "rules"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hangdoctor.report.docs [--check] [DIR]`: 0 current, 1 stale, 2 usage."""
    parser = argparse.ArgumentParser(
        prog="python -m hangdoctor.report.docs",
        description="Generate (or check) docs/rules/ from the hangdoctor catalog.",
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("directory", nargs="?", type=Path, help="default: docs/rules")
    args = parser.parse_args(argv)
    directory: Path | None = args.directory or default_directory()
    if directory is None:
        print(
            "error: not running from a hangdoctor source checkout, so there is no default "
            "docs/rules directory.\nremedy: pass the directory, e.g. "
            f"`{_REGENERATE} docs/rules`.",
            file=sys.stderr,
        )
        return 2
    if not args.check:
        pages = write_docs(directory)
        print(f"{directory}: {len(pages)} pages current.")
        return 0
    problems = _status(directory)
    if not problems:
        print(f"{directory}: all {len(all_rules()) + 1} pages are current.")
        return 0
    listing = ", ".join(f"{name} ({state})" for name, state in problems)
    command = _REGENERATE + (f" {args.directory}" if args.directory else "")
    print(
        f"error: {directory} does not match the catalog: {listing}.\n"
        f"remedy: run `{command}` and commit the result.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
