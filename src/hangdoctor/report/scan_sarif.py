"""`--format sarif`: SARIF 2.1.0 for GitHub code scanning (and any other SARIF reader).

One run; the driver carries every scan rule from the catalog (id, name,
short and full description, help as text and Markdown, a help URI, the default
level, tags and precision), so a reader needs nothing else to explain an
alert. Each result has its rule, level, message, one physical location with a
URI relative to `%SRCROOT%` (the project root) and a 1-based line and column,
the hops of a call chain as `relatedLocations`, and a `partialFingerprints`
entry that survives unrelated edits (code, path, function and the normalised
source line, not the line number). Files that could not be scanned are
`toolExecutionNotifications`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hangdoctor import __version__
from hangdoctor.catalog import Rule, all_rules
from hangdoctor.scan import ScanResult

__all__ = ["PROJECT_URL", "SARIF_SCHEMA", "rule_url", "scan_to_sarif", "scan_to_sarif_json"]

PROJECT_URL = "https://github.com/hangdoctor/hangdoctor"  # placeholder until the repo is public
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_FINGERPRINT = "hangdoctor/v1"


def rule_url(code: str) -> str:
    """Where the rule's page (docs/rules/CODE.md) is published."""
    return f"{PROJECT_URL}/blob/main/docs/rules/{code}.md"


def _help_markdown(rule: Rule) -> str:
    return (
        f"{rule.why}\n\n**Fix:** {rule.fix}\n\n"
        f"Example:\n\n```python\n{rule.bad.rstrip()}\n```\n\n"
        f"Use instead:\n\n```python\n{rule.good.rstrip()}\n```\n\n"
        f"`hangdoctor explain {rule.code}` prints this in a terminal."
    )


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {"text": f"{rule.why}\n\nFix: {rule.fix}", "markdown": _help_markdown(rule)},
        "helpUri": rule_url(rule.code),
        "defaultConfiguration": {"level": rule.severity},
        "properties": {
            "tags": ["asyncio", "reliability", "hang"],
            "precision": "high" if rule.severity == "error" else "medium",
            "problem.severity": rule.severity,
        },
    }


def _fingerprint(code: str, path: str, function: str, source: str, seen: dict[str, int]) -> str:
    base = "\0".join((code, path, function, " ".join(source.split())))
    n = seen.get(base, 0)
    seen[base] = n + 1
    return hashlib.sha256(f"{base}\0{n}".encode()).hexdigest()[:32]


def _location(uri: str, line: int, col: int) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": line, "startColumn": col + 1},
        }
    }


def scan_to_sarif(result: ScanResult) -> dict[str, Any]:
    """The SARIF log as plain JSON data."""
    rules = [r for r in all_rules() if r.static]
    index = {r.code: i for i, r in enumerate(rules)}
    severity = {r.code: r.severity for r in rules}
    seen: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for f in (*result.findings, *result.lifecycle):
        uri = result.relative(f.file)
        entry: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            # startup/shutdown code is shown apart: a note, which no gate fails on by default
            "level": "note" if f.phase else severity[f.code],
            "message": {"text": f.message},
            "locations": [_location(uri, f.line, f.col or 0)],
            "partialFingerprints": {
                _FINGERPRINT: _fingerprint(f.code, uri, f.function, f.source or "", seen)
            },
        }
        if f.phase:
            entry["properties"] = {"phase": f.phase}
        fix = result.fix_of(f)  # the scan's mark: "safe" (`--fix`) or "unsafe" (`--unsafe-fixes`)
        if fix:
            entry.setdefault("properties", {})["fix"] = fix
        steps = result.chain_of(f)
        if steps:
            related = []
            for i, step in enumerate(steps[1:], start=1):
                loc = _location(result.relative(step.file), step.line, step.col)
                loc["id"] = i
                loc["message"] = {"text": f"{step.function}: {step.call}"}
                related.append(loc)
            entry["relatedLocations"] = related
        results.append(entry)
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{p.path} {p.message}"},
            "locations": [_location(result.relative(p.path), p.line or 1, p.col or 0)],
        }
        for p in result.errors
    ]
    root = Path(result.config.root).absolute().as_uri().rstrip("/") + "/"
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hangdoctor",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": PROJECT_URL,
                        "rules": [_rule(r) for r in rules],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
                "columnKind": "unicodeCodePoints",
                "invocations": [
                    {
                        "executionSuccessful": True,  # per-file failures are notifications
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }


def scan_to_sarif_json(result: ScanResult) -> str:
    """`scan_to_sarif` as indented JSON text."""
    return json.dumps(scan_to_sarif(result), indent=2, ensure_ascii=False) + "\n"
