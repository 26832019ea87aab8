"""`--format concise`: one line per finding, `path:line:col: CODE message`, like ruff's.

The column is 1-based (in characters). Files that could not be scanned follow
as `path:line:col: error: message` lines (line and column 1 when unknown), so a
pipeline that greps for findings never mistakes them for one.
"""

from __future__ import annotations

from hangdoctor.scan import ScanResult

__all__ = ["render_scan_concise"]


def render_scan_concise(result: ScanResult) -> str:
    """The findings, then the files that failed, one per line (empty when neither)."""
    out = [f"{f.file}:{f.line}:{(f.col or 0) + 1}: {f.code} {f.message}" for f in result.findings]
    for p in result.errors:
        out.append(f"{p.path}:{p.line or 1}:{(p.col or 0) + 1}: error: {p.message}")
    return "".join(line + "\n" for line in out)
