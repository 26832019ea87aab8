"""Many short blocking calls on the loop, against the real probe, CLI and capture.

The app in `apps/short_sleeps.py` calls `time.sleep(0.05)` once per event in
every stream: no call is long, but with ten streams the loop is rarely free.
Its health p99 stays under a lenient threshold, so only the baseline shows
how much slower it got; and the capture sees the same line in every sample,
which must not read as one call stuck for the whole sampling span.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, run_hangdoctor

from hangdoctor.model import Diagnosis, Finding, LoopKind, LoopReport, LoopState, Verdict
from hangdoctor.probe.catch import Capture, with_health
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.timeline import HealthSample

APPS = Path(__file__).parent / "apps"


def _start(pause_s: float) -> ManagedServer:
    port = free_port()
    return ManagedServer(
        [sys.executable, "-m", "uvicorn", "short_sleeps:app", "--app-dir", str(APPS),
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"SHORT_BLOCK_S": "0.05", "SHORT_PAUSE_S": str(pause_s)},
        ready_timeout=30.0,
    )  # fmt: skip


@pytest.fixture
def lightly_loaded() -> Iterator[ManagedServer]:
    """2 s between events: ten streams block the loop often, each time for 50 ms."""
    with _start(2.0) as server:
        yield server


@pytest.fixture
def saturated() -> Iterator[ManagedServer]:
    """0.2 s between events: ten streams keep the loop in one 50 ms sleep after another."""
    with _start(0.2) as server:
        yield server


@pytest.mark.e2e
def test_slow_against_its_baseline_fails(lightly_loaded: ManagedServer) -> None:
    """p99 under a 5 s threshold, yet many times the baseline: FAIL, and that is the reason."""
    out = run_hangdoctor(
        "probe", lightly_loaded.base_url, "--stream", "/stream", "--clients", "10",
        "--duration", "6", "--p99-threshold", "5", "--health-timeout", "4", "--no-capture",
        "--seed", "1", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    s = json.loads(out.stdout)["summary"]
    assert s["timeouts"] == 0 and s["p99_s"] < 5, s
    assert s["baseline_requests"] >= 5 and s["slowdown"] > 10, s


@pytest.mark.e2e
def test_max_slowdown_is_the_users_to_set(lightly_loaded: ManagedServer) -> None:
    """The same run passes with --max-slowdown 1000: the factor is the user's choice, and said."""
    out = run_hangdoctor(
        "probe", lightly_loaded.base_url, "--stream", "/stream", "--clients", "10",
        "--duration", "4", "--p99-threshold", "5", "--health-timeout", "4", "--no-capture",
        "--max-slowdown", "1000", "--seed", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())  # the verdict line may wrap
    assert "times the baseline p99" in text and "(limit 1000 times)" in text


@pytest.mark.e2e
def test_many_short_calls_are_not_one_stuck_call(saturated: ManagedServer) -> None:
    """The capture sees time.sleep in every sample; the finding says many short calls."""
    out = run_hangdoctor(
        "probe", saturated.base_url, "--stream", "/stream", "--clients", "10",
        "--duration", "5", "--stall-threshold", "0.2", "--seed", "1", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    diagnosis = data["diagnosis"]
    assert diagnosis is not None and diagnosis["findings"], data["notes"]
    finding = diagnosis["findings"][0]
    assert finding["file"].endswith("short_sleeps.py"), finding
    assert "stuck for at least" not in finding["message"]
    assert "many short blocking calls here, not one call stuck" in finding["message"]
    assert finding["blocked_for_s"] is None


def _capture(findings_held: float, loops: int = 1) -> Capture:
    finding = Finding(
        code="HD201", message="`time.sleep()` in ticks at app.py:9 blocks the loop "
        f"(stuck for at least {findings_held:.1f} s).", file="app.py", line=9, function="ticks",
        pid=10, tid=10, blocked_for_s=findings_held, state=LoopState.BLOCKED,
    )  # fmt: skip
    report = LoopReport(10, 10, "MainThread", LoopKind.ASYNCIO, LoopState.BLOCKED, findings_held)
    diagnosis = Diagnosis(
        verdict=Verdict.BLOCKED,
        loops=(report,) * loops,
        findings=(finding,),
        pids=(10,),
        samples=3,
        sampled_for_s=0.8,
    )
    return Capture(5.0, diagnosis, samples=((10, 5.1), (10, 5.5), (10, 5.9)))


def test_answers_between_the_samples_mean_short_calls() -> None:
    """A health answer between the first and last sample rewrites "stuck for at least 0.8 s"."""
    health = [HealthSample(5.2, 0.1, 200), HealthSample(5.3, 0.05, 200)]  # answered at 5.3, 5.35
    fixed = with_health(_capture(0.8), health)
    assert fixed.diagnosis is not None
    finding = fixed.diagnosis.findings[0]
    assert "stuck for at least" not in finding.message
    assert "on this line in 3 samples over 0.8 s, yet the server sent 2 health answers in" in (
        finding.message
    )
    assert finding.blocked_for_s is None and fixed.diagnosis.loops[0].blocked_for_s is None


def test_stream_events_in_between_mean_short_calls() -> None:
    """Health starved, but stream events kept coming between the samples: short calls too."""
    fixed = with_health(_capture(0.8), [], events=[5.25, 5.6, 5.7])
    assert fixed.diagnosis is not None
    message = fixed.diagnosis.findings[0].message
    assert "the server sent 3 stream events in between: many short blocking calls" in message


def test_no_answer_in_between_keeps_the_stall() -> None:
    """No answer between the samples (one call really stuck), or several loops: unchanged."""
    late = [HealthSample(5.0, 1.5, 200), HealthSample(4.0, 0.1, 200)]  # answered at 6.5 and 4.1
    assert with_health(_capture(0.8), late, events=[5.09, 5.95]) == _capture(0.8)
    inside = [HealthSample(5.2, 0.1, 200)]
    assert with_health(_capture(0.8, loops=2), inside) == _capture(0.8, loops=2)
