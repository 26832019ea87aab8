"""`probe --request`: requests stuck on a healthy loop, against a real FastAPI app on this Python.

tests/py314/apps/stuck_app.py takes two asyncio locks in opposite orders in
`POST /transfer` and `POST /close-day`: sent together, the two requests wait on
each other for ever while /health keeps answering. On the host's Python (older
than 3.14) the tasks cannot be read from outside, so the probe must fail with the
stuck-request reason and say how to get the task view; `POST /transfer` alone
answers in time and passes. Real uvicorn, real sockets on 127.0.0.1, bounded runs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT, ServerFactory, run_hangdoctor

from hangdoctor.probe.engine import probe
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.timeline import ProbeConfig, ProbeVerdict

pytestmark = pytest.mark.e2e

APPS = ROOT / "tests" / "py314" / "apps"
QUICK = ("--request-timeout", "1.5", "--duration", "4", "--baseline", "0.5")


def stuck_app_argv(port: int) -> list[str]:
    """uvicorn serving the lock-order deadlock app on this Python."""
    return [
        sys.executable, "-m", "uvicorn", "stuck_app:app", "--app-dir", str(APPS),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def _stuck_app(newsroom: ServerFactory) -> ManagedServer:
    return newsroom(argv=stuck_app_argv(free_port()))


def test_deadlocked_requests_fail_and_say_the_task_view_needs_314(newsroom: ServerFactory) -> None:
    """GIVEN the deadlock app on the host's Python WHEN probed with both routes as --request
    THEN exit 1: the stuck requests are named with the health latency beside them, no
    stacks are shown, and a note says the tasks need 3.14 or the runtime."""
    server = _stuck_app(newsroom)
    out = run_hangdoctor(
        "probe", server.base_url, "--request", "POST /transfer", "--request", "POST /close-day",
        *QUICK,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    text = " ".join(out.stdout.split())  # the terminal wraps long lines
    found = re.search(
        r"(\d+) of (\d+) POST /transfer requests got no answer within 1\.5 s while /health "
        r"answered in [\d.]+ ms: requests stuck on a healthy loop",
        text,
    )
    assert found, text
    assert int(found.group(1)) >= 1
    assert "POST /close-day requests got no answer within 1.5 s" in text
    assert "Caught in the act" not in text
    assert "can be read from outside only on CPython 3.14+" in text
    assert "hangdoctor watch" in text and "hangdoctor runtime" in text


def test_the_timeline_records_every_request(newsroom: ServerFactory) -> None:
    """The Python API: each request in the timeline with its outcome, health fine beside it."""
    server = _stuck_app(newsroom)
    config = ProbeConfig(
        url=server.base_url,
        streams=(),
        health="/health",
        clients=0,
        duration_s=3.0,
        baseline_s=0.0,
        requests=("POST /transfer", "post close-day", "/health"),
        request_timeout_s=1.0,
        request_interval_s=0.5,
    )
    result = probe(config)
    assert result.verdict is ProbeVerdict.FAIL
    assert result.config.requests == ("POST /transfer", "POST /close-day", "GET /health")
    transfer, close_day, health = result.request_stats
    assert transfer.stuck >= 1 and close_day.stuck >= 1
    assert transfer.sent <= 2 + 3 * 2  # bounded: a tick with 4 waiting is skipped
    assert health.timeouts == 0 and health.answered == health.sent >= 5
    assert result.summary.timeouts == 0  # the loop stayed healthy throughout
    starts = [r.t for r in result.requests]
    assert starts == sorted(starts)
    stuck = [r for r in result.requests if r.stuck]
    assert stuck and all(r.timed_out and r.status is None for r in stuck)
    assert all(r.latency_s >= 1.0 for r in stuck)
    assert result.elapsed_s < config.duration_s + config.request_timeout_s + 2.0
    assert any("3.14" in note for note in result.notes), result.notes


def test_requests_answered_in_time_pass(newsroom: ServerFactory, tmp_path: Path) -> None:
    """The control: `POST /transfer` alone takes both locks in one order and answers in
    ~0.2 s, so the run passes; JSON and the report carry the request figures."""
    server = _stuck_app(newsroom)
    report = tmp_path / "probe.html"
    out = run_hangdoctor(
        "probe", server.base_url, "--request", "POST /transfer", "--request", "/health",
        *QUICK, "--format", "json", "--report", str(report),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "pass"
    transfer, health = data["request_stats"]
    assert transfer["request"] == "POST /transfer" and health["request"] == "GET /health"
    assert transfer["sent"] >= 4 and transfer["answered"] == transfer["ok"] == transfer["sent"]
    assert transfer["timeouts"] == transfer["stuck"] == 0 and transfer["message"] is None
    assert 0.15 < transfer["p50_s"] < 1.0
    assert data["config"]["clients"] == 0  # --request alone: no stream clients
    assert {r["request"] for r in data["requests"]} == {"POST /transfer", "GET /health"}
    if importlib.util.find_spec("hangdoctor.report.html") is not None:
        page = report.read_text(encoding="utf-8")
        assert 'data-request="POST /transfer"' in page and 'data-request-lanes="2"' in page


def test_a_request_path_the_server_does_not_have_stops_the_run(newsroom: ServerFactory) -> None:
    """A typo is not a hang: HTTP 404 on a --request path is exit 2 with the remedy."""
    server = _stuck_app(newsroom)
    out = run_hangdoctor(
        "probe", server.base_url, "--request", "POST /transfers", "--duration", "3",
        "--baseline", "0",
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "The request POST /transfers returned HTTP 404" in out.stderr
    assert "--request 'METHOD PATH'" in out.stderr


@pytest.mark.every_python
def test_probe_with_inject_reads_the_deadlock_on_this_python(newsroom: ServerFactory) -> None:
    """GIVEN the deadlock app on this (pre-3.14) Python WHEN probed with both routes as
    --request and --inject THEN exit 1, and the tasks read inside the server at that moment
    name HD601 at the app's lines; /health never timed out."""
    from tests.apt import need_tools

    need_tools({"gdb": "gdb"})
    server = _stuck_app(newsroom)
    out = run_hangdoctor(
        "probe", server.base_url, "--request", "POST /transfer", "--request", "POST /close-day",
        "--inject", *QUICK, "--format", "json", timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["timeouts"] == 0
    assert data["diagnosis_kind"] == "stuck", data.get("notes")
    diagnosis = data["diagnosis"]
    assert diagnosis["verdict"] == "stuck", diagnosis
    (found,) = [f for f in diagnosis["findings"] if f["code"] == "HD601"]
    lines = (APPS / "stuck_app.py").read_text().splitlines()
    waits = {
        n
        for n, text in enumerate(lines, 1)
        if "transfer waits for the ledger" in text or "close_day waits for the accounts" in text
    }
    assert found["file"].endswith("stuck_app.py") and found["line"] in waits
    assert len(found["cycle"]) == 2
