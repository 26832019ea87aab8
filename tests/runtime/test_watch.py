"""`hangdoctor watch -- <server>`: the watchdog in every worker of a real server, no code change.

Each live-visible cause of the newsroom example is triggered against a real
uvicorn (asyncio and uvloop) and gunicorn --preload with 2 uvicorn workers;
the stall records the workers append to `--out` must name the cause at the
line tests/data/newsroom_lines.json names for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import expected, gunicorn_argv, newsroom_argv, run_hangdoctor
from tests.jsonl import whole_records
from tests.runtime.conftest import start_server

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = pytest.mark.e2e

BLOCK_S = 0.8
THRESHOLD = 0.2
# route -> the code the watchdog must report; HD401 (starvation) is not a loop stall
CAUSES = {
    "sleep": "HD201",
    "http": "HD202",
    "socket": "HD203",
    "subprocess": "HD204",
    "file": "HD205",
    "lock": "HD206",
    "future": "HD102",
    "cpu": "HD501",
    "unknown": "HD900",
}


def _watch_argv(out: Path, server: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hangdoctor",
        "watch",
        "--threshold",
        str(THRESHOLD),
        "--out",
        str(out),
        "--",
        *server,
    ]


def _records(out: Path, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The first `count` stall records the workers wrote (waits for them, bounded)."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = whole_records(out)
        if len(records) >= count:
            break
        time.sleep(0.1)
    return records


def _at(record: dict[str, Any], tag: str) -> bool:
    exp = expected(tag)
    return bool(record["file"].endswith(exp.file) and record["line"] == exp.line)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_live_cause_is_reported_at_its_line(
    servers: list[ManagedServer], tmp_path: Path, loop: str
) -> None:
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    server = start_server(servers, _watch_argv(out, newsroom_argv(port, loop=loop)), port)
    for route in CAUSES:
        got = timed_get(f"{server.base_url}/causes/{route}?seconds={BLOCK_S}", timeout=20)
        assert got.ok, (route, got)
    records = _records(out, len(CAUSES))
    long = [r for r in records if r["blocked_for_s"] >= BLOCK_S / 2]
    assert [r["code"] for r in long] == list(CAUSES.values()), [r["message"] for r in long]
    for record, code in zip(long, CAUSES.values(), strict=True):
        assert record["pid"] == server.pid
        if code != "HD501":  # CPU work is caught on whichever line of its loop it is on
            assert _at(record, code), record
        assert BLOCK_S * 0.8 <= record["blocked_for_s"] < BLOCK_S + 3
    assert "watching the event loop of pid" in server.log_tail(50)


def test_stream_abort_is_hd101_with_the_worker(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    server = start_server(servers, _watch_argv(out, newsroom_argv(port)), port)
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{server.base_url}/news/stream") as resp,
    ):
        assert next(resp.iter_lines()).startswith("event: hello")
    record = next(r for r in _records(out, 1) if r["code"] == "HD101")
    assert _at(record, "HD101")
    assert record["waits_for"]["line"] == expected("worker").line
    assert record["blocked_for_s"] > 1.0  # it joined the 3 s upstream call


def test_gunicorn_preload_workers_each_watch_their_loop(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    """Workers forked from a master that imported the app first still start a watchdog."""
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    server = start_server(
        servers, _watch_argv(out, gunicorn_argv("api.main:app", port, preload=True)), port
    )
    for _ in range(4):
        assert timed_get(f"{server.base_url}/causes/sleep?seconds={BLOCK_S}", timeout=20).ok
    records = [r for r in _records(out, 4) if r["blocked_for_s"] >= BLOCK_S / 2]
    assert records and all(r["code"] == "HD201" and _at(r, "HD201") for r in records)
    pids = {r["pid"] for r in records}
    assert server.pid not in pids  # a worker, not the master
    watched = set(
        map(int, re.findall(r"watching the event loop of pid (\d+)", server.log_tail(80)))
    )
    assert pids <= watched and len(watched - {server.pid}) == 2  # both workers (gunicorn 27's
    # master runs a loop of its own for its control socket: watched too, never reported here)


def test_without_out_stalls_go_to_stderr(servers: list[ManagedServer]) -> None:
    port = free_port()
    argv = _watch_argv(Path("unused"), newsroom_argv(port))
    argv = argv[: argv.index("--out")] + argv[argv.index("--out") + 2 :]
    server = start_server(servers, argv, port)
    assert timed_get(f"{server.base_url}/causes/sleep?seconds={BLOCK_S}", timeout=20).ok
    deadline = time.monotonic() + 10
    while "HD201" not in server.log_tail(40) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log_tail(40)
    assert "HD201 time-sleep-in-async" in log and f"causes.py:{expected('HD201').line}" in log


def test_bad_command_is_one_sentence() -> None:
    proc = run_hangdoctor("watch", "--", "no-such-server-xyz", "app:app", timeout=30)
    assert proc.returncode == 2
    assert "was not found on PATH" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_hangdoctor("watch", timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_environment_sitecustomize_still_runs(tmp_path: Path) -> None:
    """The injected sitecustomize chains to the one the environment had."""
    own = tmp_path / "site"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE_RAN'] = '1'\n")
    from hangdoctor.cli.watch import watch_environment

    env = watch_environment({**os.environ, "PYTHONPATH": str(own)}, THRESHOLD, None)
    code = (
        "import os, asyncio; "
        "print(os.environ.get('OWN_SITE_RAN'), asyncio.events._set_running_loop.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["1", "set_running_loop"]


def test_healthy_app_under_stream_churn_reports_nothing(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    """The fixed app, streams opened and dropped by 10 clients while /health is timed: no alarm."""
    from hangdoctor.probe.engine import probe
    from hangdoctor.probe.timeline import ProbeConfig, ProbeVerdict

    out = tmp_path / "stalls.jsonl"
    port = free_port()
    argv = newsroom_argv(port, app="api.main:fixed_app")
    server = start_server(servers, _watch_argv(out, argv), port)
    cfg = ProbeConfig(
        url=server.base_url,
        streams=("/news/stream",),
        health="/health",
        clients=10,
        duration_s=5.0,
        abort_min_s=0.1,
        abort_max_s=0.6,
        seed=3,
    )
    result = probe(cfg, pid=server.pid, capture=False)
    assert result.verdict is ProbeVerdict.PASS
    assert result.summary.streams_aborted >= 20
    assert "watching the event loop" in server.log_tail(50)
    assert out.read_text(encoding="utf-8") == ""
