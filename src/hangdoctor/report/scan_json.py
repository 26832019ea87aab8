"""`--format json`: the scan as one JSON document, schema documented in docs/scan.md.

Columns are 1-based here (`column`), like every other output format meant
for tools; the model's `col` is 0-based. Keys are only ever added within one
`schema_version`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hangdoctor import __version__
from hangdoctor.catalog import get_rule
from hangdoctor.scan import ScanResult

__all__ = ["SCAN_SCHEMA_VERSION", "scan_to_json", "scan_to_jsonable"]

SCAN_SCHEMA_VERSION = 1


def scan_to_jsonable(
    result: ScanResult, fixable: Mapping[str, bool] | None = None
) -> dict[str, Any]:
    """The scan as plain JSON data."""
    fixable = fixable or {}
    findings: list[dict[str, Any]] = []
    for f in result.findings:
        rule = get_rule(f.code)
        findings.append(
            {
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
                "fix": (
                    None if f.code not in fixable else ("safe" if fixable[f.code] else "unsafe")
                ),
            }
        )
    stats = result.stats
    return {
        "schema_version": SCAN_SCHEMA_VERSION,
        "tool": {"name": "hangdoctor", "version": __version__},
        "root": str(result.config.root),
        "findings": findings,
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
            "seconds": round(stats.seconds, 4),
            "jobs": stats.jobs,
        },
        "exit_code": result.exit_code,
    }


def scan_to_json(result: ScanResult, fixable: Mapping[str, bool] | None = None) -> str:
    """`scan_to_jsonable` as indented JSON text."""
    return json.dumps(scan_to_jsonable(result, fixable), indent=2, ensure_ascii=False) + "\n"
