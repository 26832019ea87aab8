"""The diagnosis as JSON, in a stable schema other tools can rely on.

The schema is documented key by key in docs/json-schema.md. It is the model's
own plain form (`Diagnosis.to_dict`) with a `schema_version` and, per finding,
the catalog's rule `name` and `summary`, so a reader needs no catalog to show
what a code means. Keys are only ever added within one schema version.

Where the model's attribute names differ from the names every hangdoctor output
shares (schema_version 2: `thread_name`, a 1-based `column`, places as `*_in`
since `*_at` names a moment), the keys are renamed here, both ways: reports
written with schema_version 1 still read back.
"""

from __future__ import annotations

import json
from typing import Any

from hangdoctor.catalog import get_rule
from hangdoctor.errors import BadDumpError, UnknownRuleError
from hangdoctor.model import Diagnosis

__all__ = ["SCHEMA_VERSION", "diagnosis_from_json", "diagnosis_to_json", "diagnosis_to_jsonable"]

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

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
_REMEDY = "Pass a file written by `hangdoctor ... --format json` (schema_version 1 or 2)."
# model attribute -> JSON key, in the objects where they differ (the same in every output)
_LOOP_KEYS = {"thread": "thread_name"}
_CPU_KEYS = {"waiting_s": "waiting_for_cpu_s"}  # `waiting_s` is how long a task waited
_FINDING_KEYS = {"thread": "thread_name", "col": "column"}
_WAITS_ON_KEYS = {"created_at": "created_in"}
_HOLDER_KEYS = {"waits_at": "waits_in"}


def diagnosis_to_jsonable(diagnosis: Diagnosis) -> dict[str, Any]:
    """The report as plain JSON data (dicts, lists, str, numbers, None), keys in schema order."""
    data = diagnosis.to_dict()
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in _TOP_KEYS:
        out[key] = data[key]
    out["loops"] = [_loop(x, _LOOP_KEYS, _CPU_KEYS) for x in data["loops"]]
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
    if version not in READABLE_VERSIONS:
        raise BadDumpError(
            f"This report has schema_version {version!r}; this hangdoctor reads 1 and 2.",
            "Read it with the hangdoctor version that wrote it.",
        )
    try:
        return Diagnosis.from_dict(data if version == 1 else _model_keys(data))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadDumpError(
            f"This hangdoctor report is incomplete or damaged ({type(exc).__name__}: {exc}).",
            _REMEDY,
        ) from None


def _renamed(obj: dict[str, Any] | None, keys: dict[str, str]) -> dict[str, Any] | None:
    """`obj` with its keys renamed by `keys`, in the same order."""
    return None if obj is None else {keys.get(k, k): v for k, v in obj.items()}


def _loop(loop: dict[str, Any], keys: dict[str, str], cpu: dict[str, str]) -> dict[str, Any]:
    out = _renamed(loop, keys) or {}
    out["cpu"] = _renamed(out.get("cpu"), cpu)
    return out


def _places(obj: dict[str, Any], waits: dict[str, str], holder: dict[str, str]) -> dict[str, Any]:
    """The waits-on object and holders of a finding, renamed (a holder has its own waits-on)."""
    out = dict(obj)
    out["waits_on"] = _renamed(out.get("waits_on"), waits)
    out["holders"] = [
        {**h, "waits_on": _renamed(h.get("waits_on"), waits)}
        for h in (_renamed(x, holder) or {} for x in out.get("holders", ()))
    ]
    return out


def _finding(finding: dict[str, Any]) -> dict[str, Any]:
    try:
        rule = get_rule(finding["code"])
        name: str | None = rule.name
        summary: str | None = rule.summary
    except UnknownRuleError:
        name = summary = None
    head = {"code": finding["code"], "name": name, "summary": summary}
    out = _renamed(finding, _FINDING_KEYS) or {}
    # 1-based like the scan's JSON, SARIF and every file:line:col a user reads
    out["column"] = None if out["column"] is None else out["column"] + 1
    out = _places(out, _WAITS_ON_KEYS, _HOLDER_KEYS)
    return head | {k: v for k, v in out.items() if k not in _FINDING_HEAD and k not in _SCAN_ONLY}


def _model_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A schema_version 2 report keyed as the model's `from_dict` reads it."""

    def back(keys: dict[str, str]) -> dict[str, str]:
        return {v: k for k, v in keys.items()}

    def finding(f: dict[str, Any]) -> dict[str, Any]:
        out = _places(f, back(_WAITS_ON_KEYS), back(_HOLDER_KEYS))
        out = _renamed(out, back(_FINDING_KEYS)) or {}
        if out.get("col") is not None:
            out["col"] -= 1
        return out

    return {
        **data,
        "loops": [_loop(x, back(_LOOP_KEYS), back(_CPU_KEYS)) for x in data.get("loops", ())],
        "findings": [finding(f) for f in data.get("findings", ())],
    }
