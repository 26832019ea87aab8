"""`--format concise`: one line per finding, `path:line:col: CODE message`, like ruff's.

The column is 1-based (in characters). Files that could not be scanned follow
as `path:line:col: error: message` lines (line and column 1 when unknown), so a
pipeline that greps for findings never mistakes them for one. A finding
`--fix` will change reads `CODE [*] message` (`CODE [unsafe fix] message` when
it takes `--unsafe-fixes`), as in ruff.
"""

from __future__ import annotations

from hangdoctor.model import Finding
from hangdoctor.scan import ScanResult

__all__ = ["fix_label", "render_scan_concise"]


def fix_label(result: ScanResult, finding: Finding) -> str:
    """`[*]` when `--fix` changes this finding, `[unsafe fix]` when only `--unsafe-fixes`
    does, "" otherwise: the marks the scan command put on `result` (hangdoctor.fix.marks),
    shown alike by every format."""
    return {"safe": "[*]", "unsafe": "[unsafe fix]"}.get(result.fix_of(finding) or "", "")


def _code(result: ScanResult, finding: Finding) -> str:
    """`HD201 [*]`, as ruff writes `F401 [*]`."""
    label = fix_label(result, finding)
    return f"{finding.code} {label}" if label else finding.code


def render_scan_concise(result: ScanResult) -> str:
    """The findings, then the files that failed, one per line (empty when neither)."""
    out = [
        f"{f.file}:{f.line}:{(f.col or 0) + 1}: {_code(result, f)} {f.message}"
        for f in result.findings
    ]
    # startup/shutdown code, shown apart: a note, so that a grep for findings skips it
    out.extend(
        f"{f.file}:{f.line}:{(f.col or 0) + 1}: note: {f.code} [{f.phase}] {f.message}"
        for f in result.lifecycle
    )
    for p in result.errors:
        out.append(f"{p.path}:{p.line or 1}:{(p.col or 0) + 1}: error: {p.message}")
    return "".join(line + "\n" for line in out)
