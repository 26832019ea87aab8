"""`--format sarif`: SARIF 2.1.0 for GitHub code scanning (and any other SARIF reader).

One run; the driver carries every scan rule from the catalog (id, name,
short and full description, the default level, tags and precision) with its
whole docs/rules page as `help` (Markdown, and plain text derived from it), so
a reader needs nothing else to explain an alert. URIs are only ones the project
really has: `helpUri` and `informationUri` come from `[project.urls]` in the
installed package's metadata and are left out when it has none. Each result
has its rule, level, message, one physical location with a
URI relative to `%SRCROOT%` (the project root) and a 1-based line and column,
the hops of a call chain as `relatedLocations`, and a `partialFingerprints`
entry that survives unrelated edits (code, path, function and the normalised
source line, not the line number). Files that could not be scanned are
`toolExecutionNotifications`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from hangdoctor import __version__
from hangdoctor.catalog import Rule, all_rules
from hangdoctor.scan import ScanResult

__all__ = ["SARIF_SCHEMA", "project_urls", "rule_help", "scan_to_sarif", "scan_to_sarif_json"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_FINGERPRINT = "hangdoctor/v1"
# [project.urls] labels, most specific first: where a rule's help is, where the tool is
_HELP_LABELS = ("documentation", "docs", "homepage", "home", "source", "repository")
_INFO_LABELS = ("homepage", "home", "source", "repository", "documentation", "docs")


def project_urls() -> dict[str, str]:
    """`[project.urls]` of the installed hangdoctor, label (lowercased) to URL; {} when none."""
    try:
        entries = metadata.metadata("hangdoctor").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return {}
    urls: dict[str, str] = {}
    for entry in entries:
        label, sep, url = entry.partition(",")
        if sep and url.strip():
            urls.setdefault(label.strip().lower(), url.strip())
    return urls


def _pick(urls: Mapping[str, str], labels: tuple[str, ...]) -> str | None:
    return next((urls[label] for label in labels if label in urls), None)


def rule_help(rule: Rule) -> tuple[str, str]:
    """(text, Markdown): the rule's docs/rules page, rendered by the same code as the docs."""
    # imported here: the page renderer pulls in rich, which `--format concise` never needs
    from hangdoctor.report.docs import rule_markdown

    # the page's "generated, do not edit" comment is for the checked-in file, not for a reader
    lines = [ln for ln in rule_markdown(rule).splitlines() if not ln.startswith("<!--")]
    markdown = "\n".join(lines).replace("\n\n\n", "\n\n").strip() + "\n"
    text: list[str] = []
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif in_code:
            text.append(f"    {line}" if line else "")
        else:
            text.append(line.lstrip("#").strip() if line.startswith("#") else line)
    return "\n".join(text).strip() + "\n", markdown


def _rule(rule: Rule, help_uri: str | None) -> dict[str, Any]:
    text, markdown = rule_help(rule)
    entry: dict[str, Any] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {"text": text, "markdown": markdown},
        "defaultConfiguration": {"level": rule.severity},
        "properties": {
            "tags": ["asyncio", "reliability", "hang"],
            "precision": "high" if rule.severity == "error" else "medium",
            "problem.severity": rule.severity,
        },
    }
    if help_uri:
        entry["helpUri"] = help_uri
    return entry


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


def scan_to_sarif(result: ScanResult, *, urls: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The SARIF log as plain JSON data; `urls` (label to URL) default to `project_urls()`."""
    urls = project_urls() if urls is None else {k.lower(): v for k, v in urls.items()}
    help_uri = _pick(urls, _HELP_LABELS)
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
    driver: dict[str, Any] = {
        "name": "hangdoctor",
        "version": __version__,
        "semanticVersion": __version__,
        "rules": [_rule(r, help_uri) for r in rules],
    }
    information_uri = _pick(urls, _INFO_LABELS)
    if information_uri:
        driver["informationUri"] = information_uri
    root = Path(result.config.root).absolute().as_uri().rstrip("/") + "/"
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
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


def scan_to_sarif_json(result: ScanResult, *, urls: Mapping[str, str] | None = None) -> str:
    """`scan_to_sarif` as indented JSON text."""
    return json.dumps(scan_to_sarif(result, urls=urls), indent=2, ensure_ascii=False) + "\n"
