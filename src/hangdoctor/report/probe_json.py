"""A probe run as JSON, in a stable schema (documented key by key in docs/probe.md).

It is `ProbeResult.to_dict()` with the verdict and summary first, a
`schema_version`, the exit code, and the diagnosis in the same form as
`hangdoctor diagnose --format json`. Header values and the request body are
never written out: they often carry credentials. `started_at` is ISO 8601 UTC
(`hangdoctor.timefmt`), like every moment in hangdoctor's JSON, and the times on
the probe's own axis (`t`, `t_open`, ... in `ProbeResult`) carry the `_s` every
number of seconds carries in JSON (`t_s`, `t_open_s`, ...).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hangdoctor.probe.timeline import ProbeResult
from hangdoctor.report.json_report import diagnosis_to_jsonable
from hangdoctor.timefmt import iso_utc

__all__ = ["SCHEMA_VERSION", "probe_to_json", "probe_to_jsonable", "redacted"]

SCHEMA_VERSION = 2
REDACTED = "<redacted>"
# seconds since the probe started, wherever they sit in the run: JSON key = model name + unit
_TIMES = frozenset({"t", "t_open", "t_first_event", "t_end", "t_start", "diagnosis_t"})
_RENAMED = {"missed": "missed_t_s"}  # server_view: scrapes sent at these times went unanswered
_ORDER = (
    "verdict",
    "exit_code",
    "summary",
    "stalls",
    "request_stats",
    "diagnosis",
    "diagnosis_t",
    "diagnosis_kind",
    "pid",
    "notes",
    "resources",
    "server_view",
    "config",
    "started_at",
    "elapsed_s",
    "health",
    "streams",
    "requests",
    "baseline",
)


def redacted(result: ProbeResult) -> ProbeResult:
    """The result with header values and the body replaced: safe to write to a file."""
    config = result.config
    if not config.headers and config.body is None:
        return result
    return replace(
        result,
        config=replace(
            config,
            headers=tuple((name, REDACTED) for name, _ in config.headers),
            body=None if config.body is None else REDACTED,
        ),
    )


def probe_to_jsonable(result: ProbeResult, *, exit_code: int) -> dict[str, Any]:
    """Plain JSON data of a run, keys in schema order."""
    data = redacted(result).to_dict()
    data["exit_code"] = exit_code
    data["diagnosis"] = (
        diagnosis_to_jsonable(result.diagnosis.without_locals()) if result.diagnosis else None
    )
    data["started_at"] = iso_utc(data["started_at"])
    # `record` says what the object is, as in stall and stuck records (`kind` means more)
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "record": "probe"}
    for key in _ORDER:
        out[key] = data.pop(key)
    out.update(data)  # keys added to ProbeResult later still come out, after the known ones
    # the diagnosis is in the diagnose schema already
    plain = {_key(k): (v if k == "diagnosis" else _with_units(v)) for k, v in out.items()}
    return _plain(plain)  # type: ignore[no-any-return]


def _key(key: str) -> str:
    return f"{key}_s" if key in _TIMES else _RENAMED.get(key, key)


def _with_units(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key(k): _with_units(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_units(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Tuples become lists: the data is what `json.loads` of the document gives back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def probe_to_json(result: ProbeResult, *, exit_code: int, indent: int | None = 2) -> str:
    """The run as one JSON document."""
    return json.dumps(probe_to_jsonable(result, exit_code=exit_code), indent=indent)
