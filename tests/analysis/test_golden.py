"""The analysis on golden captures from real processes (CPython 3.11-3.14, uvloop).

Each file in tests/data/golden/ holds three py-spy samples of the newsroom app
taken while one cause was live, and an `expect` block written by the generator
from the app's source (never by hand). See tests/data/golden/README.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import golden_generator

from hangdoctor.analysis import analyze
from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json
from hangdoctor.model import Diagnosis, Finding, LoopState, Snapshot

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
APP = Path(__file__).resolve().parents[2] / "examples" / "newsroom"
FILES = sorted(p for p in GOLDEN.glob("*/*.json"))
CASES = {
    "stream", "stream-fixed", "healthy", "sleep", "http", "socket", "subprocess", "file",
    "lock", "future", "cpu", "unknown", "starve",
}  # fmt: skip


def _load(path: Path) -> tuple[dict[str, Any], list[Snapshot]]:
    data = json.loads(path.read_text())
    processes: dict[str, list[dict[str, Any]]] = data.get("processes") or {
        str(data.get("pid", 0)): data["samples"]
    }
    snaps = [
        snapshot_from_pyspy_json(
            s["pyspy"],
            pid=int(pid),
            taken_at=s["taken_at"],
            duration_s=s.get("duration_s"),
        )
        for pid, samples in processes.items()
        for s in samples
    ]
    if data.get("cwd"):  # a live capture knows the target's cwd and shows paths below it
        snaps = [dataclasses.replace(s, cwd=data["cwd"]) for s in snaps]
    return data, snaps


def _diagnose(path: Path) -> tuple[dict[str, Any], Diagnosis]:
    data, snaps = _load(path)
    return data, analyze(snaps, source_root=str(APP))


def _finding(diagnosis: Diagnosis, code: str) -> Finding:
    return next(f for f in diagnosis.findings if f.code == code)


def _cases(*names: str) -> list[Path]:
    return [p for p in FILES if p.stem in names]


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_golden_files_exist() -> None:
    """Every variant the issues name has captures of every case: 3.11-3.14 and uvloop."""
    variants = {p.parent.name for p in FILES}
    expected = {"cpython-3.11", "cpython-3.12", "cpython-3.13", "cpython-3.14", "uvloop-3.12"}
    assert expected <= variants
    for variant in variants:
        assert {p.stem for p in FILES if p.parent.name == variant} == CASES, variant


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_expectations_match_the_app_markers(path: Path) -> None:
    """The stored `expect` is what newsroom_lines.json says of the app today (else: re-capture)."""
    gen = golden_generator()
    data = json.loads(path.read_text())
    assert data["expect"] == gen.expectation(path.stem, gen.read_markers(APP), APP)


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_verdict_and_cause(path: Path) -> None:
    """GIVEN a real capture WHEN analysed THEN verdict, code and user file:line are as expected."""
    data, diagnosis = _diagnose(path)
    expect = data["expect"]
    assert diagnosis.verdict.value == expect["verdict"], diagnosis
    if expect["verdict"] == "healthy":
        assert diagnosis.findings == ()
        assert all(lp.state is LoopState.IDLE for lp in diagnosis.loops)
        return
    codes = [f.code for f in diagnosis.findings]
    assert expect["code"] in codes, codes
    finding = _finding(diagnosis, expect["code"])
    if expect.get("file"):
        assert finding.file.endswith(expect["file"]), finding.file
    if expect.get("line"):
        assert finding.line == expect["line"], (finding.line, finding.source)
    if expect.get("functions"):
        assert finding.function in expect["functions"], finding.function
    assert finding.source, "the source line of the user frame must be shown"


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_one_loop_thread_of_the_right_kind(path: Path) -> None:
    """Only the main thread runs a loop, asyncio or uvloop as captured; the upstream server,
    executor workers and AnyIO workers are never taken for loops."""
    data, diagnosis = _diagnose(path)
    assert [(lp.thread, lp.kind.value) for lp in diagnosis.loops] == [("MainThread", data["loop"])]
    assert diagnosis.samples == 3 and not diagnosis.notes


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_message_points_at_the_line(path: Path) -> None:
    """The message names the place relative to the server's working directory."""
    data, diagnosis = _diagnose(path)
    for finding in diagnosis.findings:
        where = f"examples/newsroom/{data['expect']['file']}:{finding.line}"
        assert where in finding.message, finding.message
        assert finding.function in finding.message


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.parent.name)
def test_executor_shutdown_names_the_worker(path: Path) -> None:
    """HD101: the loop waits for a worker thread; the report names it and its time.sleep line."""
    data, diagnosis = _diagnose(path)
    finding = _finding(diagnosis, "HD101")
    assert finding.waits_for is not None
    assert finding.waits_for.function == data["expect"]["worker_function"] == "fetch_news"
    assert (finding.waits_for.file or "").endswith(data["expect"]["worker_file"])
    assert finding.waits_for.line == data["expect"]["worker_line"]
    assert finding.waits_for.source and "sleep" in finding.waits_for.source
    assert "joined" in finding.waits_for.description  # linked by the Thread object's address
    assert finding.blocked_for_s is not None and finding.blocked_for_s > 0.5


@pytest.mark.parametrize("path", _cases("future"), ids=lambda p: p.parent.name)
def test_future_result_names_the_report_worker(path: Path) -> None:
    """HD102: the loop waits in Future.result(); the busy pool worker in build_report is named."""
    data, diagnosis = _diagnose(path)
    finding = _finding(diagnosis, "HD102")
    assert finding.waits_for is not None
    assert finding.waits_for.function == data["expect"]["worker_function"] == "build_report"
    assert finding.waits_for.line == data["expect"]["worker_line"]
    assert (finding.waits_for.thread_name or "").startswith("report")
    assert "`fut.result()`" in finding.message


@pytest.mark.parametrize("path", _cases("starve"), ids=lambda p: p.parent.name)
def test_starvation_counts_the_anyio_workers(path: Path) -> None:
    """HD401: the loop is idle, all 40 AnyIO workers sit in the sync route; /health/sync hung."""
    data, diagnosis = _diagnose(path)
    (loop,) = diagnosis.loops
    assert loop.state is LoopState.STARVED
    assert loop.busy_workers == loop.total_workers == 40
    assert data["probes"] == {"/health": "ok", "/health/sync": "timeout"}
    assert "40 of 40" in _finding(diagnosis, "HD401").message


@pytest.mark.parametrize("path", _cases("lock"), ids=lambda p: p.parent.name)
def test_lock_is_named_by_its_module_level_type(path: Path) -> None:
    """HD206: a C-level acquire leaves the user frame on top; the line's lock is resolved."""
    _, diagnosis = _diagnose(path)
    finding = _finding(diagnosis, "HD206")
    assert finding.user_frame_index == 0  # no library frame above the user's
    assert "`_jobs_lock.acquire()` (threading.Lock.acquire)" in finding.message


@pytest.mark.parametrize("path", _cases("cpu"), ids=lambda p: p.parent.name)
def test_cpu_work_is_busy_not_blocked(path: Path) -> None:
    """HD501: the loop thread is on CPU in Python code: busy, with the time it was seen busy."""
    _, snaps = _load(path)
    assert all(t.active for s in snaps for t in s.threads if t.name == "MainThread")
    _, diagnosis = _diagnose(path)
    finding = _finding(diagnosis, "HD501")
    assert finding.state is LoopState.BUSY
    assert finding.blocked_for_s is not None and finding.blocked_for_s > 0.5
    assert "busy for at least" in finding.message


@pytest.mark.parametrize("path", _cases("unknown"), ids=lambda p: p.parent.name)
def test_unknown_wait_names_the_call(path: Path) -> None:
    """HD900: a wait the catalog lacks is still blocked, and the call on the line is named."""
    _, diagnosis = _diagnose(path)
    assert "`select.select()`" in _finding(diagnosis, "HD900").message


@pytest.mark.parametrize(
    "path", [p for p in FILES if p.stem not in ("healthy", "stream-fixed", "starve")], ids=_id
)
def test_probes_confirm_the_loop_was_stuck(path: Path) -> None:
    """Every blocking capture was taken while /health did not answer: the loop really was stuck."""
    data = json.loads(path.read_text())
    assert data["probes"]["/health"] == "timeout"


@pytest.mark.parametrize("path", _cases("healthy", "stream-fixed"), ids=_id)
def test_healthy_captures_answered(path: Path) -> None:
    """The healthy captures were taken while /health and /health/sync answered."""
    data = json.loads(path.read_text())
    assert data["probes"] == {"/health": "ok", "/health/sync": "ok"}


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.parent.name)
def test_the_idle_flag_is_not_trusted(path: Path) -> None:
    """py-spy flags the blocked loop thread idle; the analysis still says blocked."""
    _, snaps = _load(path)
    loop_threads = [t for s in snaps for t in s.threads if t.name == "MainThread"]
    assert loop_threads and all(t.active is False for t in loop_threads)
    _, diagnosis = _diagnose(path)
    assert diagnosis.verdict.value == "blocked"
