"""The JSON report: stable keys, documented in docs/json-schema.md, and a lossless round trip."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.errors import BadDumpError
from hangdoctor.model import Diagnosis
from hangdoctor.report.json_report import SCHEMA_VERSION, diagnosis_from_json, diagnosis_to_json

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "json-schema.md"

TOP = [
    "schema_version",
    "verdict",
    "pids",
    "samples",
    "sampled_for_s",
    "loops",
    "findings",
    "notes",
    "secrets_redacted",
]
FINDING = [
    "code", "name", "summary", "message", "file", "line", "function", "pid", "thread_name",
    "tid", "blocked_for_s", "state", "source", "column", "waits_for", "stack",
    "user_frame_index", "chain", "cwd", "task", "task_id", "waits_on", "holders", "waiting_s",
    "request", "cycle", "tasks_waiting",
]  # fmt: skip


@pytest.fixture(params=["blocked", "http_blocked", "busy", "starved", "healthy"])
def diagnosis(request: pytest.FixtureRequest) -> Diagnosis:
    value: Diagnosis = request.getfixturevalue(request.param)
    return value


def test_round_trip(diagnosis: Diagnosis) -> None:
    """diagnosis_from_json(diagnosis_to_json(d)) == d, locals, waits_for and notes included."""
    assert diagnosis_from_json(diagnosis_to_json(diagnosis)) == diagnosis
    assert diagnosis_from_json(diagnosis_to_json(diagnosis, indent=None)) == diagnosis


def test_round_trip_keeps_scan_fields(blocked: Diagnosis) -> None:
    """Column and call chain (scan findings) survive the round trip too."""
    finding = replace(blocked.findings[0], col=8, chain=("gen", "cleanup", "pool.shutdown"))
    d = replace(blocked, findings=(finding,))
    assert diagnosis_from_json(diagnosis_to_json(d)) == d
    assert json.loads(diagnosis_to_json(d))["findings"][0]["column"] == 9  # 1-based in JSON


def test_top_level_and_finding_keys(blocked: Diagnosis) -> None:
    """Keys come in the documented order; each finding carries the rule's name and summary."""
    data = json.loads(diagnosis_to_json(blocked))
    assert list(data) == TOP
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["verdict"] == "blocked" and data["pids"] == [3731, 3740]
    finding = data["findings"][0]
    assert list(finding) == FINDING
    assert finding["code"] == "HD101" and finding["name"] == "executor-shutdown-on-loop"
    assert finding["state"] == "blocked" and finding["blocked_for_s"] == 2.004
    assert finding["file"] == "/srv/app/api/routes/stream.py" and finding["line"] == 35
    assert finding["waits_for"]["thread_name"] == "ThreadPoolExecutor-0_0"
    assert finding["waits_for"]["tid"] == 3736
    frame = finding["stack"][0]
    assert {"function", "file", "line"} <= set(frame)
    assert frame["function"] == "Thread._wait_for_tstate_lock" and frame["line"] == 1167
    assert finding["stack"][finding["user_frame_index"]]["function"] == "news_stream.<locals>.gen"


def test_no_wait_target_is_null(busy: Diagnosis) -> None:
    """A finding that waits for nothing in particular has waits_for: null, not a missing key."""
    finding = json.loads(diagnosis_to_json(busy))["findings"][0]
    assert finding["waits_for"] is None and finding["chain"] == []


def test_indent_none_is_one_line(healthy: Diagnosis) -> None:
    """indent=None gives one line (JSON Lines friendly); the default is indented."""
    assert "\n" not in diagnosis_to_json(healthy, indent=None)
    assert diagnosis_to_json(healthy).startswith('{\n  "schema_version": 2,')


def test_unknown_code_has_null_name(blocked: Diagnosis) -> None:
    """A code the catalog does not know still serialises (name null) and round-trips."""
    d = replace(blocked, findings=(replace(blocked.findings[0], code="HD999"),))
    data = json.loads(diagnosis_to_json(d))
    assert data["findings"][0]["name"] is None
    assert diagnosis_from_json(diagnosis_to_json(d)) == d


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "not a hangdoctor report"),
        ('{"schema_version": 3, "verdict": "healthy"}', "schema_version 3"),
        ('{"verdict": "healthy"}', "schema_version None"),
        ('{"schema_version": 2, "verdict": "blocked", "findings": [{"code": "HD101"}]}', "damaged"),
        ('{"schema_version": 1, "verdict": "sleepy"}', "incomplete or damaged"),
        ('{"schema_version": 1, "verdict": "blocked", "findings": [{"code": "HD101"}]}', "damaged"),
    ],
)
def test_bad_input_is_a_clear_error(text: str, says: str) -> None:
    """Anything but a version-1 or -2 report raises BadDumpError with a sentence and a remedy."""
    with pytest.raises(BadDumpError) as info:
        diagnosis_from_json(text)
    assert says in info.value.message
    assert info.value.remedy


def _documented_tables() -> dict[str, list[str]]:
    """Section title -> the keys listed in its table, in order (the `diagnose` section only)."""
    tables: dict[str, list[str]] = {}
    title = ""
    section = ""
    for line in SCHEMA_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].split(":", 1)[0]
            continue
        if section != "diagnose":
            continue
        if line.startswith("### "):
            title = line[4:].strip()
        m = re.match(r"^\| `(\w+)` \|", line)
        if m:
            tables.setdefault(title, []).append(m.group(1))
    return tables


def _keys(obj: dict[str, Any]) -> list[str]:
    return list(obj)


def test_schema_doc_matches_output(blocked: Diagnosis) -> None:
    """docs/json-schema.md lists exactly the keys written, in the order written, per object."""
    data = json.loads(diagnosis_to_json(blocked))
    finding = data["findings"][0]
    doc = _documented_tables()
    assert doc["Top level"] == _keys(data)
    assert doc["Loop object"] == _keys(data["loops"][0])
    assert doc["Finding object"] == _keys(finding)
    assert doc["Wait target object (`waits_for`)"] == _keys(finding["waits_for"])
    assert doc["Frame object"] == _keys(finding["stack"][0])
    assert doc["Local object"] == _keys(finding["stack"][0]["locals"][0])


def test_json_says_whether_secrets_were_redacted() -> None:
    """`--show-secrets` changes what a report holds: its JSON says so, as the terminal does."""
    from click.testing import CliRunner

    from hangdoctor.cli.main import cli

    dump = str(Path(__file__).parents[1] / "data" / "dumps" / "pyspy-json-locals-3.12.json")
    for extra, redacted in (((), True), (("--show-secrets",), False)):
        result = CliRunner().invoke(cli, ["analyze", dump, "--format", "json", *extra])
        assert result.exit_code in (0, 1), result.output
        data = json.loads(result.stdout)
        assert data["secrets_redacted"] is redacted
        assert diagnosis_from_json(result.stdout).secrets_redacted is redacted
