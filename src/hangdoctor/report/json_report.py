"""The diagnosis as JSON, in a stable schema other tools can rely on.

The schema is documented key by key in docs/json-schema.md. It is the model's
own plain form (`Diagnosis.to_dict`) with a `schema_version` and, per finding,
the catalog's rule `name` and `summary`, so a reader needs no catalog to show
what a code means. Keys are only ever added within one schema version.
"""

from __future__ import annotations

import json
from typing import Any

from hangdoctor.catalog import get_rule
from hangdoctor.errors import BadDumpError, UnknownRuleError
from hangdoctor.model import Diagnosis

__all__ = ["SCHEMA_VERSION", "diagnosis_from_json", "diagnosis_to_json", "diagnosis_to_jsonable"]

SCHEMA_VERSION = 1

_TOP_KEYS = (
    "verdict",
    "pids",
    "samples",
    "sampled_for_s",
    "loops",
    "findings",
    "notes",
    "secrets_redacted",
)
_FINDING_HEAD = ("code", "name", "summary")
# a static finding's place in the server's life: no meaning for a live capture
_SCAN_ONLY = frozenset({"phase"})
_REMEDY = "Pass a file written by `hangdoctor ... --json` (schema_version 1)."


def diagnosis_to_jsonable(diagnosis: Diagnosis) -> dict[str, Any]:
    """The report as plain JSON data (dicts, lists, str, numbers, None), keys in schema order."""
    data = diagnosis.to_dict()
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in _TOP_KEYS:
        out[key] = data[key]
    out["findings"] = [_finding(f) for f in data["findings"]]
    return out


def diagnosis_to_json(diagnosis: Diagnosis, *, indent: int | None = 2) -> str:
    """The report as a JSON document (`indent=None` for one line, e.g. JSON Lines)."""
    return json.dumps(diagnosis_to_jsonable(diagnosis), indent=indent, ensure_ascii=False)


def diagnosis_from_json(text: str) -> Diagnosis:
    """Read a report written by `diagnosis_to_json` back; BadDumpError on anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadDumpError(
            f"This is not a hangdoctor JSON report: invalid JSON at line {exc.lineno}.", _REMEDY
        ) from None
    if not isinstance(data, dict) or "verdict" not in data:
        raise BadDumpError("This JSON is not a hangdoctor report (no 'verdict').", _REMEDY)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadDumpError(
            f"This report has schema_version {version!r}; this hangdoctor reads {SCHEMA_VERSION}.",
            "Read it with the hangdoctor version that wrote it.",
        )
    try:
        return Diagnosis.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadDumpError(
            f"This hangdoctor report is incomplete or damaged ({type(exc).__name__}: {exc}).",
            _REMEDY,
        ) from None


def _finding(finding: dict[str, Any]) -> dict[str, Any]:
    try:
        rule = get_rule(finding["code"])
        name: str | None = rule.name
        summary: str | None = rule.summary
    except UnknownRuleError:
        name = summary = None
    head = {"code": finding["code"], "name": name, "summary": summary}
    return head | {
        k: v for k, v in finding.items() if k not in _FINDING_HEAD and k not in _SCAN_ONLY
    }
