"""`diagnose --inject`: the tasks of a running server read from inside it with gdb, on this Python.

Real uvicorn serving tests/py314/apps/stuck_app.py on the Python running the
suite (3.10-3.13 in .ci/run: nothing else reads their tasks from outside), the
real gdb, the real CLI. Each test checks the diagnosis and that the target is
as it was: it answers, it holds no hangdoctor module, no directory is left in /tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.apt import need_tools
from tests.conftest import ROOT, Background, ServerFactory, run_hangdoctor
from tests.py314.apps.stuck_app import __file__ as STUCK_APP_FILE

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.every_python]

APPS = ROOT / "tests" / "py314" / "apps"
STUCK_LINES = Path(STUCK_APP_FILE).read_text().splitlines()
NOBODY = "65534"


def _line(text: str) -> int:
    """The 1-based line of stuck_app.py holding `text`."""
    (number,) = [n for n, line in enumerate(STUCK_LINES, 1) if text in line]
    return number


@pytest.fixture(autouse=True)
def _gdb() -> None:
    need_tools({"gdb": "gdb"})


def _serve(newsroom: ServerFactory, loop: str = "asyncio", *prefix: str) -> ManagedServer:
    port = free_port()
    argv = [
        *prefix, sys.executable, "-m", "uvicorn", "stuck_app:app", "--app-dir", str(APPS),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--loop", loop,
    ]  # fmt: skip
    return newsroom(argv=argv)


def _leave_open(server: ManagedServer, request: str) -> socket.socket:
    """Send `request` and keep the connection open without reading: it stays in flight."""
    port = int(server.base_url.rsplit(":", 1)[1])
    method, path = request.split()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    return sock


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("hangdoctor-inject-*")}


def _diagnose(pid: int, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = run_hangdoctor("diagnose", "--pid", str(pid), "--inject", "--format", "json", *extra)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _unchanged(server: ManagedServer, before: set[str]) -> None:
    """The target answers, imported nothing of ours, printed nothing, and /tmp is clean."""
    health = timed_get(server.base_url + "/health", timeout=5)
    assert health.ok, health
    loaded = httpx.get(server.base_url + "/loaded", timeout=5)
    assert loaded.status_code == 200 and loaded.json() == [], loaded.text
    assert _leftovers() == before
    log = server.log_tail(40)
    assert "Traceback" not in log and "Error" not in log, log


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_inject_names_both_tasks_of_a_lock_order_deadlock(
    newsroom: ServerFactory, loop: str
) -> None:
    """GIVEN two requests that take two locks in opposite orders WHEN diagnosed with --inject
    THEN stuck, HD601: both tasks, the lock each holds and where it took it, the lock it
    waits for and where; the target is left as it was."""
    before = _leftovers()
    server = _serve(newsroom, loop)
    sockets = [_leave_open(server, "POST /transfer"), _leave_open(server, "POST /close-day")]
    try:
        time.sleep(1.0)  # both are past their sleep(0.2), inside the second `async with`
        status, out = _diagnose(server.pid)
        assert (status, out["verdict"]) == (1, "stuck"), out
        (finding,) = out["findings"]
        assert finding["code"] == "HD601", finding
        assert finding["line"] in {
            _line("stuck: transfer waits for the ledger"),
            _line("stuck: close_day waits for the accounts"),
        }, finding
        assert {
            finding["waits_on"]["name"],
            *(h["waits_on"]["name"] for h in finding["holders"]),
        } == {
            "accounts_lock",
            "ledger_lock",
        }, finding
        taken = {h["line"] for h in finding["holders"]}
        assert taken == {_line("transfer takes the accounts"), _line("close_day takes the ledger")}
        assert len(finding["cycle"]) == 2
        assert finding["waits_on"]["kind"] == "lock"
        _unchanged(server, before)
    finally:
        for sock in sockets:
            sock.close()


def test_inject_over_stuck_after_names_the_holders_of_a_full_semaphore(
    newsroom: ServerFactory,
) -> None:
    """GIVEN three requests on a semaphore of two whose holders never return WHEN diagnosed
    with --inject --stuck-after 2 THEN stuck, HD604 on `exports`: its two holders by line."""
    before = _leftovers()
    server = _serve(newsroom)
    sockets = [_leave_open(server, "GET /export") for _ in range(3)]
    try:
        time.sleep(0.5)
        status, out = _diagnose(server.pid, "--stuck-after", "2")
        assert (status, out["verdict"]) == (1, "stuck"), out
        finding = next(f for f in out["findings"] if f["code"] == "HD604")
        assert finding["waits_on"]["name"] == "exports", finding
        assert finding["line"] == _line("stuck: export waits for a token")
        taken = _line("stuck: export waits for a token")  # where each holder took its token
        assert [h["line"] for h in finding["holders"]] == [taken] * 2, finding
        assert finding["waiting_s"] >= 1.5, finding  # measured over the samples
        _unchanged(server, before)
    finally:
        for sock in sockets:
            sock.close()


def test_inject_into_another_users_server(newsroom: ServerFactory) -> None:
    """GIVEN the deadlock in a server run as uid 65534 WHEN root diagnoses it with --inject
    THEN HD601: the private directory was the target's to read and write."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the server as another user")
    need_tools({"setpriv": "util-linux"})
    before = _leftovers()
    prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    tried = subprocess.run(
        [*prefix, sys.executable, "-c", "import uvicorn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if tried.returncode != 0:  # pyenv's 3.13 here: its libpython is under root's home
        pytest.skip(f"this Python cannot run as uid {NOBODY}: {tried.stderr.strip()[-200:]}")
    server = _serve(newsroom, "asyncio", *prefix)
    assert str(os.stat(f"/proc/{server.pid}").st_uid) == NOBODY
    sockets = [_leave_open(server, "POST /transfer"), _leave_open(server, "POST /close-day")]
    try:
        time.sleep(1.0)
        status, out = _diagnose(server.pid)
        assert (status, [f["code"] for f in out["findings"]]) == (1, ["HD601"]), out
        _unchanged(server, before)
    finally:
        for sock in sockets:
            sock.close()


def test_a_healthy_server_read_with_inject_is_healthy(newsroom: ServerFactory) -> None:
    """GIVEN an idle server WHEN diagnosed with --inject THEN healthy, no note of unseen tasks."""
    server = _serve(newsroom)
    status, out = _diagnose(server.pid)
    assert (status, out["verdict"], out["findings"]) == (0, "healthy", []), out
    assert not any("could not be read" in n or "not looked at" in n for n in out["notes"]), out


def test_without_gdb_inject_is_refused_in_one_sentence(newsroom: ServerFactory) -> None:
    """GIVEN no gdb on PATH WHEN --inject THEN exit 2, before any sampling: install gdb."""
    server = _serve(newsroom)
    env_path = os.environ["PATH"]
    bindir = str(Path(sys.executable).parent)  # py-spy, but no gdb
    os.environ["PATH"] = bindir
    try:
        proc = run_hangdoctor("diagnose", "--pid", str(server.pid), "--inject")
    finally:
        os.environ["PATH"] = env_path
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "gdb is not installed here" in proc.stderr and "apt install gdb" in proc.stderr


def test_without_inject_the_note_offers_it(newsroom: ServerFactory) -> None:
    """GIVEN an idle pre-3.14 server WHEN diagnosed THEN the note offers --inject."""
    if sys.version_info >= (3, 14):
        pytest.skip("3.14 reads the tasks from outside without --inject")
    server = _serve(newsroom)
    proc = run_hangdoctor("diagnose", "--pid", str(server.pid), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    notes = " ".join(json.loads(proc.stdout)["notes"])
    assert "--inject" in notes, notes


def test_a_blocked_loop_is_not_injected_into(
    newsroom: ServerFactory, background: Background
) -> None:
    """GIVEN a route that blocks the loop in time.sleep WHEN diagnosed with --inject THEN
    blocked at the route's line (the threads say it), and a note says the tasks were not read
    because the loop was never idle: no code ran in the middle of the route."""
    server = newsroom()
    background.get(f"{server.base_url}/causes/sleep?seconds=15", timeout=40)
    deadline = time.monotonic() + 10
    while timed_get(server.base_url + "/health", timeout=0.3).ok:
        assert time.monotonic() < deadline, "the route never blocked the loop"
        time.sleep(0.05)
    status, out = _diagnose(server.pid)
    assert (status, out["verdict"]) == (1, "blocked"), out
    assert [f["code"] for f in out["findings"]] == ["HD201"], out
    notes = " ".join(out["notes"])
    assert f"tasks of pid {server.pid} could not be read" in notes, notes
    assert "was never idle" in notes or "was not idle" in notes, notes


def test_a_target_whose_python_was_replaced_on_disk_is_not_injected_into(
    tmp_path: Path,
) -> None:
    """GIVEN a Python whose executable was deleted after it started (an upgrade) WHEN
    --inject THEN exit 2 before gdb runs: gdb would read the new file's addresses."""
    exe = tmp_path / "python3-copy"
    shutil.copy2(os.path.realpath(sys.executable), exe)
    code = "import asyncio, sys; print('ready', flush=True); asyncio.run(asyncio.sleep(60))"
    env = {**os.environ, "PYTHONHOME": sys.base_prefix}
    proc = subprocess.Popen(
        [str(exe), "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        exe.unlink()
        out = run_hangdoctor("diagnose", "--pid", str(proc.pid), "--inject")
        assert out.returncode == 2, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        assert "replaced on disk since it started" in out.stderr, out.stderr
        assert "Restart the service" in out.stderr
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


EXIT_WAIT = """
import asyncio, time
async def main():
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 60)  # nobody awaits it
    await asyncio.sleep(0.1)
    print("main done", flush=True)
asyncio.run(main())
"""


def test_asyncio_run_waiting_for_the_default_executor_at_exit_is_hd606() -> None:
    """GIVEN `asyncio.run(main())` whose main left a job in the default executor WHEN main
    has returned and diagnose --inject looks THEN HD606: the program is ending and waits
    for the default executor's threads; a healthy loop alone would have said nothing."""
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_WAIT], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"main done"
        time.sleep(0.3)
        status, out = _diagnose(proc.pid)
        assert (status, out["verdict"]) == (1, "stuck"), out
        (found,) = out["findings"]
        assert found["code"] == "HD606", found
        assert "default executor" in found["message"], found["message"]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
