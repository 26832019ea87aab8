"""The analysis on golden captures from real processes (CPython 3.11-3.13, uvloop).

Each file in tests/data/golden/ holds three py-spy samples of the newsroom app
taken while one cause was live, and an `expect` block written by the generator
from the app's source (never by hand). See tests/data/golden/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.analysis import analyze
from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json
from hangdoctor.model import Diagnosis, Snapshot

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
APP = Path(__file__).resolve().parents[2] / "examples" / "newsroom"
FILES = sorted(p for p in GOLDEN.glob("*/*.json"))


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
    return data, snaps


def _diagnose(path: Path) -> tuple[dict[str, Any], Diagnosis]:
    data, snaps = _load(path)
    return data, analyze(snaps, source_root=str(APP))


def test_golden_files_exist() -> None:
    """Every variant the issue names has captures: 3.11, 3.12, 3.13 and uvloop."""
    variants = {p.parent.name for p in FILES}
    assert {"cpython-3.11", "cpython-3.12", "cpython-3.13", "uvloop-3.12"} <= variants


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_verdict_and_cause(path: Path) -> None:
    """GIVEN a real capture WHEN analysed THEN verdict, code and user file:line are the expected ones."""
    data, diagnosis = _diagnose(path)
    expect = data["expect"]
    assert diagnosis.verdict.value == expect["verdict"], diagnosis
    if expect["verdict"] == "healthy":
        assert diagnosis.findings == ()
        return
    codes = [f.code for f in diagnosis.findings]
    assert expect["code"] in codes, codes
    finding = next(f for f in diagnosis.findings if f.code == expect["code"])
    if expect.get("file"):
        assert finding.file.endswith(expect["file"]), finding.file
    if expect.get("line"):
        assert finding.line == expect["line"], (finding.line, finding.source)
    assert finding.source, "the source line of the user frame must be shown"


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.stem == "stream"],
    ids=lambda p: p.parent.name,
)
def test_executor_shutdown_names_the_worker(path: Path) -> None:
    """HD101: the loop waits for a worker thread; the report names it and its time.sleep line."""
    data, diagnosis = _diagnose(path)
    finding = next(f for f in diagnosis.findings if f.code == "HD101")
    assert finding.waits_for is not None
    assert finding.waits_for.function == "fetch_news"
    assert finding.waits_for.line == data["expect"]["worker_line"]
    assert finding.waits_for.source and "sleep" in finding.waits_for.source
    assert finding.blocked_for_s is not None and finding.blocked_for_s > 0.5


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.stem == "stream"],
    ids=lambda p: p.parent.name,
)
def test_the_idle_flag_is_not_trusted(path: Path) -> None:
    """py-spy flags the blocked loop thread idle; the analysis still says blocked."""
    _, snaps = _load(path)
    loop_threads = [t for s in snaps for t in s.threads if t.name == "MainThread"]
    assert loop_threads and all(t.active is False for t in loop_threads)
    _, diagnosis = _diagnose(path)
    assert diagnosis.verdict.value == "blocked"
