"""`probe --server-records FILE`: the stall and stuck records a server writes, on the probe's axis.

The follower is tested on real files that grow the way `watch --out` grows
them (whole lines from several writers, a line cut by a read, a file that
appears late, junk); the end-to-end test runs a real newsroom server under
`hangdoctor watch --out FILE` and the real `hangdoctor probe` CLI, which must
put the server's own HD201 record, at its line, inside the health chart's stall.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from tests.conftest import expected, newsroom_argv, run_hangdoctor
from tests.jsonl import whole_records
from tests.probe._servers import quick_config
from tests.runtime.conftest import servers, start_server  # noqa: F401 (the fixture)

from hangdoctor.model import RequestInfo
from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.server_records import RecordFollower, check_records_file
from hangdoctor.probe.timeline import ProbeResult, ProbeSummary, ProbeVerdict
from hangdoctor.report.probe_json import probe_to_jsonable
from hangdoctor.report.probe_terminal import render_summary
from hangdoctor.runtime.stall import StallRecord
from hangdoctor.runtime.stuck import StuckRecord, StuckWait
from hangdoctor.schemas import load_schema

START = 1_800_000_000.0  # the probe's wall clock at t = 0 in the unit tests


def _stall(at: float, *, code: str = "HD201", line: int = 41, pid: int = 100) -> str:
    return StallRecord(
        code=code,
        name="sleep-on-loop",
        message="time.sleep() blocks the event loop.",
        file="/srv/api/routes/causes.py",
        line=line,
        function="sleep_on_loop",
        duration=1.25,
        started_at=at,
        detected_after=0.3,
        pid=pid,
        thread="MainThread",
        tid=pid,
        state="blocked",
        samples=3,
        request=RequestInfo("GET", "/causes/sleep", route="/causes/sleep"),
    ).to_json()


def _stuck(at: float) -> str:
    return StuckRecord(
        code="HD601",
        name="await-deadlock",
        message="Two tasks wait on each other.",
        file="/srv/api/routes/locks.py",
        line=12,
        function="transfer",
        pid=101,
        thread="MainThread",
        tid=101,
        seen_at=at,
        waits_on=StuckWait(kind="lock", name="lock_b", type="asyncio.Lock"),
        task="Task-7",
        waiting_s=4.0,
    ).to_json()


def _append(path: Path, text: str) -> None:
    # one write each, with O_APPEND, as the runtime's JSON Lines writer does
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def test_only_lines_appended_after_the_start_are_read(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    _append(path, _stall(START + 1.0, code="HD202") + "\n")  # an older run's stall
    follower = RecordFollower(str(path))
    follower.start()
    _append(path, _stall(START + 2.0) + "\n" + _stuck(START + 3.5) + "\n")  # two in one read
    assert follower.poll() == 2
    records = follower.records(START)
    assert [(r.kind, r.code, r.t) for r in records] == [
        ("stall", "HD201", 2.0),
        ("stuck", "HD601", 3.5),
    ]
    stall, stuck = records
    assert (stall.file, stall.line, stall.function) == (
        "/srv/api/routes/causes.py",
        41,
        "sleep_on_loop",
    )
    assert stall.blocked_for_s == 1.25 and stall.request == "GET /causes/sleep"
    assert stall.t_end == pytest.approx(3.25)
    assert stuck.waits_on == "asyncio.Lock `lock_b`" and stuck.task == "Task-7"
    assert stuck.waiting_s == 4.0 and stuck.blocked_for_s is None
    assert follower.note() is None


def test_records_that_ended_before_the_probe_started_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    follower = RecordFollower(str(path))
    follower.start()
    # written during the run, but about a stall that was over before t = 0 (the baseline)
    _append(path, _stall(START - 5.0) + "\n" + _stall(START - 0.5, line=50) + "\n")
    assert follower.poll() == 2
    (kept,) = follower.records(START)  # the one still going at t = 0 is kept, where it began
    assert kept.line == 50 and kept.t == -0.5


def test_a_partial_last_line_waits_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.touch()
    follower = RecordFollower(str(path))
    follower.start()
    line = _stall(START + 1.0) + "\n"
    _append(path, line[:37])
    assert follower.poll() == 0
    _append(path, line[37:-1])
    assert follower.poll() == 0  # still no newline
    _append(path, "\n" + _stall(START + 2.0, pid=200)[:10])
    assert follower.poll() == 1
    assert [r.t for r in follower.records(START)] == [1.0]
    assert follower.note() is None  # a cut line is not a bad line


def test_a_file_that_appears_late_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "later" / "records.jsonl"
    follower = RecordFollower(str(path))
    follower.start()
    assert follower.poll() == 0
    path.parent.mkdir()
    _append(path, _stall(START + 1.0, pid=1) + "\n" + _stall(START + 1.5, pid=2) + "\n")
    assert follower.poll() == 2
    assert [r.pid for r in follower.records(START)] == [1, 2]


def test_a_file_that_never_appears_is_said(tmp_path: Path) -> None:
    follower = RecordFollower(str(tmp_path / "none.jsonl"))
    follower.start()
    assert follower.poll() == 0
    note = follower.note()
    assert note is not None and "did not appear" in note


def test_garbage_lines_are_counted_and_said_once(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.touch()
    follower = RecordFollower(str(path))
    follower.start()
    junk = [
        "not json at all",
        "[1, 2]",
        '{"record": "probe", "schema_version": 2}',
        '{"record": "stall", "code": "HD201"}',
        '{"record": "stall", "schema_version": 99}',
    ]
    _append(path, "\n".join([junk[0], _stall(START + 1.0), *junk[1:], ""]))
    _append(path, "\xff\xfe\n")
    assert follower.poll() == 1
    view = follower.into(None, START)
    assert view.url is None and view.records_file == str(path)
    assert [r.code for r in view.records] == ["HD201"]
    assert view.records_skipped == 6
    assert view.records_note is not None
    assert view.records_note.count(". ") == 0 and "6 lines of" in view.records_note
    assert "were skipped (the first: not JSON)" in view.records_note


def test_a_rotated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    _append(path, _stall(START - 100.0) + "\n")
    follower = RecordFollower(str(path))
    follower.start()
    path.rename(tmp_path / "records.jsonl.1")  # as logrotate moves it aside
    _append(path, _stall(START + 3.0) + "\n")  # a new file, as long as the old one
    assert follower.poll() == 1
    assert [r.t for r in follower.records(START)] == [3.0]


def test_the_follower_reads_on_its_own_period(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    follower = RecordFollower(str(path))
    follower.start()

    async def main() -> int:
        running = True
        task = asyncio.create_task(follower.run(lambda: running))
        await asyncio.sleep(0.1)
        _append(path, _stall(START + 1.0) + "\n")
        await asyncio.sleep(0.6)  # two periods: read without being asked
        found = len(follower.records(START))
        running = False
        await task
        return found

    assert asyncio.run(main()) == 1


def test_bad_files_are_one_sentence(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ProbeError, match="is a directory"):
        check_records_file(str(tmp_path))
    with pytest.raises(ProbeError, match="is a FIFO"):
        check_records_file(str(fifo))
    check_records_file(str(tmp_path / "not-yet.jsonl"))  # may appear later
    for bad, words in ((tmp_path, "is a directory"), (fifo, "is a FIFO")):
        out = run_hangdoctor(
            "probe", "http://127.0.0.1:9/health", "--clients", "0", "--no-capture",
            "--server-records", str(bad),
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and words in out.stderr
        assert "refused" not in out.stderr  # said before the probe tried the server


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the CLI as another user")
def test_an_unreadable_file_is_one_sentence() -> None:
    # a directory anyone may enter (pytest's own are private), holding a file only root reads
    folder = Path(tempfile.mkdtemp(prefix="hd-records-"))
    try:
        folder.chmod(0o755)
        path = folder / "records.jsonl"
        path.write_text("")
        path.chmod(0o600)
        out = run_hangdoctor(
            "probe", "http://127.0.0.1:9/health", "--clients", "0", "--no-capture",
            "--server-records", str(path), user="65534",
        )  # fmt: skip
    finally:
        shutil.rmtree(folder)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "cannot be read (Permission denied)" in out.stderr


def test_terminal_gives_a_line_per_record(tmp_path: Path) -> None:
    from rich.console import Console

    path = tmp_path / "records.jsonl"
    follower = RecordFollower(str(path))
    follower.start()
    _append(path, _stall(START + 1.0) + "\n" + _stuck(START + 2.0) + "\nnope\n")
    follower.poll()
    summary = ProbeSummary(1, 1, 0, 0, 0.01, 0.01, 0.01, 0.01, 0.0, 0, 0, 0, 0)
    result = ProbeResult(
        config=quick_config("http://127.0.0.1:9", server_records=str(path)),
        started_at=START,
        elapsed_s=4.0,
        health=(),
        streams=(),
        stalls=(),
        summary=summary,
        verdict=ProbeVerdict.PASS,
        server_view=follower.into(None, START),
    )
    console = Console(width=200, record=True, color_system=None)
    console.print(render_summary(result, width=200))
    text = console.export_text()
    assert "1 stall(s), 1 stuck episode(s) written to" in text
    assert (
        "t=1.00 s  HD201 stall 1.25 s at /srv/api/routes/causes.py:41 in sleep_on_loop "
        "during GET /causes/sleep" in text
    )
    assert "t=2.00 s  HD601 stuck 4.0 s at /srv/api/routes/locks.py:12 in transfer" in text
    assert text.count("not a stall or stuck record and was skipped (the first: not JSON)") == 1
    data = probe_to_jsonable(result, exit_code=0)
    errors = [e.message for e in Draft202012Validator(load_schema("probe")).iter_errors(data)]
    assert errors == []
    assert data["server_view"]["url"] is None
    assert data["server_view"]["records"][0]["t_s"] == 1.0


# --- end to end: a real server under `hangdoctor watch --out`, the real probe CLI -----------

BLOCK_S = 1.2


@pytest.mark.e2e
def test_probe_places_the_servers_own_stall_record_in_the_stall_window(
    servers: list[ManagedServer],  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "watch" / "stalls.jsonl"  # watch creates it
    port = free_port()
    watch = [sys.executable, "-m", "hangdoctor", "watch", "--threshold", "0.2", "--out", str(out)]
    server = start_server(servers, [*watch, "--", *newsroom_argv(port)], port)
    # a stall that ended before the probe started: in the file, never in the report
    assert timed_get(f"{server.base_url}/causes/sleep?seconds=0.9", timeout=20).ok
    deadline = time.monotonic() + 15
    while not whole_records(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(whole_records(out)) == 1
    started = time.monotonic()
    proc = run_hangdoctor(
        "probe", f"{server.base_url}/health", "--clients", "0", "--duration", "4",
        "--baseline", "0", "--no-capture", "--server-metrics", "off",
        "--request", f"/causes/sleep?seconds={BLOCK_S}", "--request-interval", "60",
        "--server-records", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # health stalled: the probe fails the run
    assert time.monotonic() - started < 60
    data: dict[str, Any] = json.loads(proc.stdout)
    errors = [e.message for e in Draft202012Validator(load_schema("probe")).iter_errors(data)]
    assert errors == []
    view = data["server_view"]
    assert view["url"] is None and view["records_file"] == str(out)
    assert view["records_skipped"] == 0 and view["records_note"] is None
    assert data["config"]["server_records"] == str(out)
    long = [r for r in view["records"] if r["kind"] == "stall" and r["blocked_for_s"] >= 0.8]
    assert len(long) == 1, view["records"]  # the earlier 0.9 s stall is not among them
    (record,) = long
    want = expected("HD201")
    assert record["code"] == "HD201"
    assert record["file"].endswith(want.file) and record["line"] == want.line
    assert record["function"] == "sleep_on_loop"  # the request: only with the middleware
    assert record["pid"] == server.pid
    (window,) = data["stalls"]
    # exact: the loop stopped after the request was sent and before health went late
    assert window["t_start_s"] - 0.15 <= record["t_s"] <= window["t_end_s"]
    assert record["t_s"] + record["blocked_for_s"] <= window["t_end_s"] + 0.15
    assert BLOCK_S * 0.8 <= record["blocked_for_s"] < BLOCK_S + 1
