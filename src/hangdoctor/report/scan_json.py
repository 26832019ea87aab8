"""`--format json`: the scan as one JSON document, schema documented in docs/scan.md.

Columns are 1-based here (`column`), like every other output format meant
for tools; the model's `col` is 0-based. Keys are only ever added within one
`schema_version`.
"""

from __future__ import annotations

import json
from typing import Any

from hangdoctor import __version__
from hangdoctor.catalog import get_rule
from hangdoctor.model import Finding
from hangdoctor.scan import ScanResult
from hangdoctor.scan.startup import reason

__all__ = ["SCAN_SCHEMA_VERSION", "scan_to_json", "scan_to_jsonable"]

SCAN_SCHEMA_VERSION = 2


def scan_to_jsonable(result: ScanResult) -> dict[str, Any]:
    """The scan as plain JSON data (`fix`: the scan's marks, hangdoctor.fix.marks)."""

    def finding(f: Finding) -> dict[str, Any]:
        rule = get_rule(f.code)
        return {
            "code": f.code,
            "name": rule.name,
            "severity": rule.severity,
            "message": f.message,
            "file": f.file,
            "path": result.relative(f.file),
            "line": f.line,
            "column": (f.col or 0) + 1,
            "function": f.function,
            "source": f.source,
            "chain": list(f.chain),
            "steps": [
                {
                    "function": s.function,
                    "file": s.file,
                    "line": s.line,
                    "column": s.col + 1,
                    "call": s.call,
                }
                for s in result.chain_of(f)
            ],
            "fix": result.fix_of(f),  # "safe", "unsafe", None: what --fix does here
        }

    findings = [finding(f) for f in result.findings]
    # startup and shutdown code, shown apart (they do not count for `exit_code` by default)
    lifecycle = [
        {**finding(f), "phase": f.phase, "reason": reason(f.phase)}
        for f in result.lifecycle
        if f.phase
    ]
    stats = result.stats
    return {
        "schema_version": SCAN_SCHEMA_VERSION,
        "tool": {"name": "hangdoctor", "version": __version__},
        "root": str(result.config.root),
        "findings": findings,
        "lifecycle": lifecycle,
        "problems": [
            {
                "path": p.path,
                "line": p.line,
                "column": None if p.col is None else p.col + 1,
                "message": p.message,
                "kind": p.kind,
            }
            for p in result.problems
        ],
        "stats": {
            "files": stats.files,
            "parsed": stats.parsed,
            "cached": stats.cached,
            "lines": stats.lines,
            "elapsed_s": round(stats.seconds, 4),  # seconds end in `_s` in every output
            "jobs": stats.jobs,
        },
        "exit_code": result.exit_code,
    }


def scan_to_json(result: ScanResult) -> str:
    """`scan_to_jsonable` as indented JSON text."""
    return json.dumps(scan_to_jsonable(result), indent=2, ensure_ascii=False) + "\n"
