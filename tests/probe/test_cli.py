"""`hangdoctor probe` end to end: the real CLI against the newsroom app under uvicorn.

Exit 1 with the diagnosis in the text output for the buggy stream (the server
found from the URL's port), exit 0 and the documented JSON keys for the fixed
one, and an HTML report written when asked for.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tests.conftest import ServerFactory, expected, run_hangdoctor

pytestmark = pytest.mark.e2e

SHORT = ("--clients", "10", "--duration", "4", "--abort-after", "0.2-1", "--seed", "3")
TOP_KEYS = [
    "schema_version",
    "record",
    "verdict",
    "exit_code",
    "summary",
    "stalls",
    "request_stats",
    "diagnosis",
    "diagnosis_t_s",
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
]


def test_buggy_text_output(newsroom: ServerFactory) -> None:
    """The buggy app: exit 1, FAIL, the stall, and HD101 at the marked line caught in the act."""
    server = newsroom()
    out = run_hangdoctor("probe", server.base_url, "--stream", "/news/stream", *SHORT)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    exp = expected("HD101")
    text = out.stdout
    assert " FAIL " in text
    assert "timed out" in text and "longest stall" in text
    assert "Caught in the act at t=" in text and f"pid {server.pid}" in text
    assert "HD101" in text and f"{exp.file}:{exp.line}" in text


def test_fixed_json_and_report(newsroom: ServerFactory, tmp_path: Path) -> None:
    """The fixed app: exit 0, JSON with the documented keys in order, and the HTML report."""
    server = newsroom(app="api.main:fixed_app")
    report = tmp_path / "probe.html"
    out = run_hangdoctor(
        "probe", f"{server.base_url}/health", "--stream", "/news/stream", *SHORT,
        "--format", "json", "--report", str(report), "--header", "Authorization: Bearer s3cret",
    )  # fmt: skip
    if importlib.util.find_spec("hangdoctor.report.html") is None:
        assert out.returncode == 2 and "report" in out.stderr
        return
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data) == TOP_KEYS
    assert data["schema_version"] == 2 and data["record"] == "probe"
    assert data["verdict"] == "pass" and data["exit_code"] == 0
    assert data["summary"]["timeouts"] == 0 and data["summary"]["streams_aborted"] > 0
    assert data["config"]["health"] == "/health"  # taken from the URL's path
    assert data["config"]["headers"] == [["Authorization", "<redacted>"]]
    assert "s3cret" not in out.stdout
    assert data["health"][0].keys() == {"t_s", "latency_s", "status", "timed_out", "error"}
    assert {"client", "path", "t_open_s", "events", "aborted"} <= data["streams"][0].keys()
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "s3cret" not in html
    assert not list(tmp_path.glob(".probe.html.*"))  # the atomic write left no temp file
