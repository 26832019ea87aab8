"""`diagnose` finds requests stuck on a healthy loop in a 3.14 target, from outside.

A FastAPI service (tests/py314/apps/stuck_app.py) runs under Debian's python3.14 in
the cached root, as a container would run it. Its requests are made to wait on one
another (a lock-order inversion, a semaphore whose holders never return) while
/health keeps answering; the host's hangdoctor reads the tasks with CPython 3.14's
remote debugging and must name the cause, the tasks and the lines.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import diagnose_json, run_hangdoctor
from tests.py314.conftest import Start314, Target

from hangdoctor.probe.http import timed_get

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "stuck_app.py"
CLIENT_DEADLINE_S = 20.0


def _line(marker: str) -> int:
    lines = APP.read_text(encoding="utf-8").splitlines()
    (hit,) = [n for n, text in enumerate(lines, 1) if marker in text]
    return hit


def _argv(python: str, port: int) -> list[str]:
    return [
        python, "-m", "uvicorn", "stuck_app:app", "--app-dir", "tests/py314/apps",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def _call(url: str, method: str = "GET") -> threading.Thread:
    """A request in the background with a deadline: it waits, as a user's would."""

    def run() -> None:
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=CLIENT_DEADLINE_S) as response:
                response.read()
        except (urllib.error.URLError, TimeoutError, OSError):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _health_answers(base: str) -> None:
    for _ in range(3):
        assert timed_get(base + "/health", timeout=2.0).ok, "the loop must stay healthy"


@pytest.fixture
def stuck_server(start314: Start314) -> Target:
    return start314(_argv)


def test_a_lock_order_deadlock_is_named_from_outside(stuck_server: Target) -> None:
    """GIVEN two requests that take two locks in opposite orders WHEN diagnosed from the
    host THEN verdict stuck, HD601 names both tasks, the line each waits at and where the
    other took the lock; /health answered all along."""
    base = stuck_server.base_url
    callers = [_call(base + "/transfer", "POST"), _call(base + "/close-day", "POST")]
    time.sleep(1.0)
    _health_answers(base)
    code, out = diagnose_json(stuck_server.pid)
    assert code == 1, out
    assert out["verdict"] == "stuck", out
    assert out["loops"][0]["state"] == "stuck"
    (found,) = [f for f in out["findings"] if f["code"] == "HD601"]
    waits = {_line("transfer waits for the ledger"), _line("close_day waits for the accounts")}
    assert found["line"] in waits
    assert found["file"].endswith("stuck_app.py")
    assert len(found["cycle"]) == 2
    assert found["waits_on"]["kind"] == "lock"
    assert found["waits_on"]["name"] in {"accounts_lock", "ledger_lock"}
    holders = found["holders"]
    assert {h["task"] for h in holders} == set(found["cycle"])
    took = {h["line"] for h in holders}
    assert took == {_line("transfer takes the accounts"), _line("close_day takes the ledger")}
    assert all(h["waits_in"].split(":")[-1].isdigit() for h in holders)
    _health_answers(base)
    del callers  # daemon threads: they end at their deadline


def test_a_full_semaphore_needs_time_and_then_is_named(stuck_server: Target) -> None:
    """GIVEN 3 requests on a semaphore of 2 whose holders never return WHEN diagnosed
    without --stuck-after THEN healthy with a note saying how to tell; WITH --stuck-after 2
    THEN HD604 with the 2 holders and the waiting line."""
    base = stuck_server.base_url
    for _ in range(3):
        _call(base + "/export")
    time.sleep(1.0)
    _health_answers(base)
    code, quick = diagnose_json(stuck_server.pid)
    assert code == 0 and quick["verdict"] == "healthy", quick
    assert any("--stuck-after" in note for note in quick["notes"]), quick["notes"]
    code, out = diagnose_json(stuck_server.pid, "--stuck-after", "2")
    assert code == 1 and out["verdict"] == "stuck", out
    (found,) = [f for f in out["findings"] if f["code"] == "HD604"]
    assert found["line"] == _line("export waits for a token")
    assert found["waits_on"]["name"] == "exports"
    assert found["waits_on"]["type"] == "asyncio.Semaphore"
    assert len(found["holders"]) == 2
    assert {h["waits_in"].rsplit(":", 1)[-1] for h in found["holders"]} == {
        str(_line("the upstream never answers"))
    }
    assert out["sampled_for_s"] >= 1.8


def test_the_terminal_report_reads_like_a_thread_dump(stuck_server: Target) -> None:
    base = stuck_server.base_url
    _call(base + "/transfer", "POST")
    _call(base + "/close-day", "POST")
    time.sleep(1.0)
    proc = run_hangdoctor("diagnose", "--pid", str(stuck_server.pid))
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert " STUCK " in text
    assert "HD601 await-deadlock" in text
    assert "none of them can go on" in text
    assert "Await chain of task" in text
    assert "stuck_app.py:" in text


def test_a_shutdown_waiting_for_an_endless_stream_is_named(stuck_server: Target) -> None:
    """GIVEN an open endless SSE stream WHEN uvicorn gets SIGTERM THEN its graceful shutdown
    waits for the stream, and diagnose names HD606 and the stream's task."""
    host, port = stuck_server.base_url.removeprefix("http://").split(":")
    stream = socket.create_connection((host, int(port)), timeout=10.0)
    try:
        stream.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        assert stream.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.8)
        os.kill(stuck_server.pid, signal.SIGTERM)
        time.sleep(1.0)
        code, out = diagnose_json(stuck_server.pid)
        assert code == 1 and out["verdict"] == "stuck", out
        (found,) = [f for f in out["findings"] if f["code"] == "HD606"]
        assert found["waits_on"]["kind"] == "shutdown"
        assert "uvicorn" in found["message"]
        # CPython 3.14 does not follow `async for` into the generator: the stream's task
        # is named by the response that drives it
        (waiting,) = found["holders"]
        assert "starlette/responses.py:" in waiting["waits_in"], waiting
        assert "1 task(s) still running" in found["message"], found["message"]
    finally:
        stream.close()


def test_streams_and_long_polls_that_keep_moving_are_not_stuck(stuck_server: Target) -> None:
    """GIVEN 10 open SSE streams, 10 clients long-polling and a publisher every 0.3 s WHEN
    diagnosed with --stuck-after 2 THEN healthy: nothing that moves is called stuck."""
    base = stuck_server.base_url
    host, port = base.removeprefix("http://").split(":")
    stop = threading.Event()
    streams = []
    for _ in range(10):
        sock = socket.create_connection((host, int(port)), timeout=10.0)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        streams.append(sock)

    def poller() -> None:
        while not stop.is_set():
            try:
                urllib.request.urlopen(base + "/poll", timeout=5).read()
            except OSError:
                return

    def publisher() -> None:
        while not stop.wait(0.3):
            try:
                request = urllib.request.Request(base + "/publish", method="POST", data=b"")
                urllib.request.urlopen(request, timeout=5).read()
            except OSError:
                return

    workers = [threading.Thread(target=poller, daemon=True) for _ in range(10)]
    workers.append(threading.Thread(target=publisher, daemon=True))
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        code, out = diagnose_json(stuck_server.pid, "--stuck-after", "2")
        assert code == 0 and out["verdict"] == "healthy", [f["message"] for f in out["findings"]]
        assert out["findings"] == []
    finally:
        stop.set()
        for sock in streams:
            sock.close()
        for worker in workers:
            worker.join(timeout=10)


def test_inject_reads_the_deadlock_of_a_target_in_its_own_root(stuck_server: Target) -> None:
    """GIVEN the deadlock in a 3.14 server in its own root and mount namespace WHEN diagnosed
    from the host with --inject THEN HD601 as from outside, read by the target's own objects
    (gdb opens its binaries in there, the package goes through its /tmp), and nothing is
    left in that /tmp."""
    from tests.apt import need_tools

    need_tools({"gdb": "gdb"})
    base = stuck_server.base_url
    callers = [_call(base + "/transfer", "POST"), _call(base + "/close-day", "POST")]
    time.sleep(1.0)
    code, out = diagnose_json(stuck_server.pid, "--inject")
    assert (code, out["verdict"]) == (1, "stuck"), out["notes"]
    (found,) = [f for f in out["findings"] if f["code"] == "HD601"]
    waits = {_line("transfer waits for the ledger"), _line("close_day waits for the accounts")}
    assert found["line"] in waits and len(found["cycle"]) == 2
    took = {h["line"] for h in found["holders"]}
    assert took == {_line("transfer takes the accounts"), _line("close_day takes the ledger")}
    assert not any("could not be read" in n for n in out["notes"]), out["notes"]
    tmp = Path(f"/proc/{stuck_server.pid}/root/tmp")
    assert not list(tmp.glob("hangdoctor-inject-*"))
    _health_answers(base)
    del callers
