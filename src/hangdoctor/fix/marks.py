"""Which scan findings `--fix` will change, asked of the fixer itself before anything is shown.

The `[*]` / `[unsafe fix]` marks (JSON's `fix`, SARIF's `fix` property) once
came from the finding's code alone (HD201 safe, HD202 unsafe) while the fixer
could refuse that very place ("There is no call at line 10"). Now the scan
command runs the fixer on each file with fixable findings without writing,
with the sites and target `--fix` and `--fix --unsafe-fixes` use
(`fix_sites` is what `_apply_fixes` hands the fixer too), and marks a finding
only when that dry run changes its code:

- "safe": `--fix` changes it;
- "unsafe": only `--fix --unsafe-fixes` does;
- no mark: neither does (the fixer's reason is printed by `--fix`).

Renderers read the marks from `ScanResult.fix_of`; they never run the fixer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from hangdoctor.fix.codes import FIXABLE
from hangdoctor.fix.files import fix_file_runs
from hangdoctor.fix.model import FixSite
from hangdoctor.outfile import is_read_only

if TYPE_CHECKING:
    from hangdoctor.scan import ScanResult

__all__ = ["SAFE", "UNSAFE", "fix_marks", "fix_sites", "with_fix_marks"]

SAFE = "safe"
UNSAFE = "unsafe"

_Key = tuple[str, int, int, str]  # (file, line, col, code), as ScanResult.fixes is keyed
FileFilter = Callable[[str], bool]  # which files (display paths) `--fix` may rewrite


def fix_sites(
    result: ScanResult, *, unsafe: bool, files: FileFilter | None = None
) -> dict[str, list[FixSite]]:
    """The sites `--fix` (`--fix --unsafe-fixes` when `unsafe`) hands the fixer, by file.

    Every finding whose code has a fix (a safe one unless `unsafe`), in the
    files `files` accepts; findings in startup and shutdown code
    (`ScanResult.lifecycle`) are reported apart and not fixed.
    """
    by_file: dict[str, list[FixSite]] = {}
    for f in result.findings:
        safe = FIXABLE.get(f.code)
        if safe is None or (not safe and not unsafe):
            continue
        if files is not None and not files(f.file):
            continue
        by_file.setdefault(f.file, []).append(FixSite(f.code, f.line, f.col or 0))
    return by_file


def _changed(
    result: ScanResult,
    display: str,
    safe: list[FixSite],
    every: list[FixSite],
    target: tuple[int, int],
) -> tuple[list[FixSite], list[FixSite]]:
    """The sites a safe fix of the file would change, and those a fix with unsafe fixes
    would: one read, parse and analysis for both; nothing is written."""
    src = result.files.get(display)
    if src is None or is_read_only(src.path):
        return [], []  # `--fix` refuses a read-only file, whatever the code says
    runs = [(safe, False), (every, True)]
    done = fix_file_runs(src.path, runs, target_python=target)
    safe_run, unsafe_run = ([a.site for a in r.outcome.applied if a.site] for r in done)
    return safe_run, unsafe_run


def fix_marks(
    result: ScanResult, *, target: tuple[int, int], files: FileFilter | None = None
) -> dict[_Key, str]:
    """(file, line, col, code) -> SAFE or UNSAFE for every finding a fix would change."""
    marks: dict[_Key, str] = {}
    safe_sites = fix_sites(result, unsafe=False, files=files)
    for display, every in fix_sites(result, unsafe=True, files=files).items():
        safe, unsafe = _changed(result, display, safe_sites.get(display, []), every, target)
        for site in safe:
            marks[(display, site.line, site.col, site.code)] = SAFE
        for site in unsafe:
            marks.setdefault((display, site.line, site.col, site.code), UNSAFE)
    return marks


def with_fix_marks(
    result: ScanResult, *, target: tuple[int, int], files: FileFilter | None = None
) -> ScanResult:
    """`result` carrying the marks of `fix_marks` (read with `ScanResult.fix_of`)."""
    return dataclasses.replace(result, fixes=fix_marks(result, target=target, files=files))
