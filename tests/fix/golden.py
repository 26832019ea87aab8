"""Golden fix cases in tests/data/fixes/<name>/: before.py, case.json, after.py, fix.diff.

case.json: {"sites": [[code, line, col or needle]], "unsafe": bool, "target": [3, 10],
"applied": [codes by line], "skipped": [[code, line, reason substring]],
"description": substring of the first applied description}. A needle is text on
that line; the site's column is where it starts. HANGDOCTOR_REGEN=1 rewrites
after.py and fix.diff from the current fixer (review the diff before committing).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from hangdoctor.fix import FixOutcome, FixSite, fix_source
from hangdoctor.fix.files import unified_diff

DATA = Path(__file__).resolve().parents[1] / "data" / "fixes"
REGEN = os.environ.get("HANGDOCTOR_REGEN") == "1"


@dataclass(frozen=True)
class Case:
    name: str
    before: str
    sites: tuple[FixSite, ...]
    unsafe: bool
    target: tuple[int, int]
    spec: dict[str, Any]

    @property
    def dir(self) -> Path:
        return DATA / self.name

    def run(self, text: str | None = None) -> FixOutcome:
        """Fix before.py, or `text` at the same places (moved to where they are in `text`)."""
        sites = self.sites if text is None else shift_sites(self.before, text, self.sites)
        return fix_source(
            self.before if text is None else text,
            sites,
            unsafe=self.unsafe,
            target_python=self.target,
        )


def _site(raw: list[Any], lines: list[str]) -> FixSite:
    code, line, where = raw
    col = where if isinstance(where, int) else lines[line - 1].index(where)
    return FixSite(code, line, col)


def load(name: str) -> Case:
    folder = DATA / name
    before = (folder / "before.py").read_text(encoding="utf-8")
    spec = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    lines = before.splitlines()
    return Case(
        name=name,
        before=before,
        sites=tuple(_site(s, lines) for s in spec["sites"]),
        unsafe=bool(spec.get("unsafe", False)),
        target=tuple(spec.get("target", (3, 10))),  # type: ignore[arg-type]
        spec=spec,
    )


def names() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if (p / "case.json").is_file())


def diff_of(case: Case, after: str) -> str:
    return unified_diff(case.before, after, f"{case.name}.py")


def shift_sites(before: str, after: str, sites: tuple[FixSite, ...]) -> tuple[FixSite, ...]:
    """The same reported places in `after`: lines moved by what the fix inserted above them."""
    matcher = SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    moved: list[FixSite] = []
    for site in sites:
        for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if i1 <= site.line - 1 < i2:
                line = j1 + min(site.line - 1 - i1, max(j2 - j1 - 1, 0)) + 1
                moved.append(FixSite(site.code, line, site.col))
                break
        else:
            moved.append(site)
    return tuple(moved)


def regenerate(case: Case) -> None:
    outcome = case.run()
    (case.dir / "after.py").write_text(outcome.text, encoding="utf-8")
    (case.dir / "fix.diff").write_text(diff_of(case, outcome.text), encoding="utf-8")
