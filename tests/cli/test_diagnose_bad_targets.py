"""`hangdoctor diagnose` on targets that cannot give a verdict: never a false all-clear.

A stopped process, one that stops or dies between samples, hangdoctor's own
process (the --pid of the shell that runs it), a Python process without an event
loop, a shell running several unrelated programs, and servers told apart by
their ports. Each is one sentence with the remedy and exit 2. Real processes,
the real py-spy, the real CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.capture.conftest import (  # noqa: F401 - fixtures used by name
    READY,
    StartTarget,
    python_target,
    wait_state,
)
from tests.conftest import ROOT, run_hangdoctor

from hangdoctor.capture.procs import children, process_info

pytestmark = pytest.mark.e2e

NOBODY = "65534"
# An asyncio service whose loop is idle: healthy when all of it can be looked at.
IDLE_LOOP = f"""
import asyncio
async def main():
    print({READY!r}, flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""
NO_LOOP = f"import time; print({READY!r}, flush=True); time.sleep(120)"
ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _error(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(message, remedy) of the CLI's `error:` / `remedy:` lines; no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    error = next((ln for ln in lines if ln.startswith("error: ")), "")
    remedy = next((ln for ln in lines if ln.startswith("remedy: ")), "")
    assert error, proc.stdout + proc.stderr
    return error.removeprefix("error: "), remedy.removeprefix("remedy: ")


def test_a_stopped_process_is_said_never_healthy(
    python_target: StartTarget,  # noqa: F811
    wait_state: Callable[..., Any],  # noqa: F811
) -> None:
    """GIVEN a stopped asyncio service (SIGSTOP, Ctrl-Z) WHEN diagnosed, with and without
    --nonblocking, THEN exit 2: it is stopped, `kill -CONT PID`; and it stays stopped.

    Once: py-spy's waitpid error, and with --nonblocking a HEALTHY verdict.
    """
    target = python_target(IDLE_LOOP)
    os.kill(target.pid, signal.SIGSTOP)
    assert wait_state(target.pid, lambda s: s == "T") == "T"
    for extra in ((), ("--nonblocking",)):
        proc = run_hangdoctor("diagnose", "--pid", str(target.pid), *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        message, remedy = _error(proc)
        assert message.startswith(f"Process {target.pid} (python")
        assert message.endswith(
            "is stopped (state T: SIGSTOP, or Ctrl-Z in its terminal), so it answers nothing "
            "and py-spy cannot sample it."
        )
        assert remedy.startswith(f"Resume it with `kill -CONT {target.pid}`")
        assert "HEALTHY" not in proc.stdout
    assert wait_state(target.pid, lambda s: s is not None) == "T"


@pytest.fixture
def after_first_sample() -> Iterator[Callable[[int, int, signal.Signals], threading.Thread]]:
    """Factory: a thread that sends a signal to `target` once hangdoctor `hd`'s first py-spy
    run against it has ended (a process stopped or killed between samples)."""
    threads: list[threading.Thread] = []

    def start(hd: int, target: int, sig: signal.Signals) -> threading.Thread:
        def watch() -> None:
            wanted = ("dump", "--pid", str(target))
            deadline = time.monotonic() + 60
            seen = False
            while time.monotonic() < deadline:
                running = any(
                    all(w in c.argv for w in wanted) for c in children(hd) if "py-spy" in c.program
                )
                if running:
                    seen = True
                elif seen:
                    # between samples, not in the instant after py-spy exits: then hangdoctor
                    # checks whether py-spy left the target stopped, and would resume it
                    time.sleep(0.1)
                    os.kill(target, sig)
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=70)


def _shell(script: str, *args: str, cwd: str = str(ROOT)) -> subprocess.CompletedProcess[str]:
    """`sh -c script args...` in its own session, its whole group killed when it ends."""
    proc = subprocess.Popen(
        ["sh", "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1", "COLUMNS": "120"},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group id is the shell's pid: our child
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _diagnose_async(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hangdoctor", "diagnose", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ, COLUMNS="120", NO_COLOR="1"),
    )


@pytest.mark.parametrize(
    ("sig", "said"),
    [(signal.SIGSTOP, "is stopped (state T"), (signal.SIGKILL, "exited after 1 of 3 samples")],
)
def test_a_target_that_stops_or_dies_between_samples_is_no_all_clear(
    python_target: StartTarget,  # noqa: F811
    after_first_sample: Callable[[int, int, signal.Signals], threading.Thread],
    sig: signal.Signals,
    said: str,
) -> None:
    """GIVEN an idle asyncio service stopped or killed after the first sample WHEN the
    diagnosis ends THEN exit 2 naming what happened, not the first sample's HEALTHY."""
    target = python_target(IDLE_LOOP)
    hd = _diagnose_async("--pid", str(target.pid), "--samples", "3", "--interval", "1.0")
    try:
        watcher = after_first_sample(hd.pid, target.pid, sig)
        out, err = hd.communicate(timeout=90)
    finally:
        if hd.poll() is None:
            hd.kill()
            hd.wait(timeout=10)
    watcher.join(timeout=10)
    assert hd.returncode == 2, out + err
    proc = subprocess.CompletedProcess(hd.args, hd.returncode, out, err)
    message, _remedy = _error(proc)
    assert said in message, message
    assert "HEALTHY" not in out


def test_hangdoctor_never_diagnoses_itself(tmp_path: Path) -> None:
    """GIVEN `--pid` of the shell that runs hangdoctor THEN hangdoctor and its py-spy are
    left out: the shell alone is not Python, exit 2, not hangdoctor's own HEALTHY."""
    out = tmp_path / "out.json"
    shell = '"$0" -m hangdoctor diagnose --pid $$ --format json >"$1"; echo rc=$?'
    proc = _shell(shell, sys.executable, str(out))
    assert proc.stdout.strip() == "rc=2", proc.stdout + proc.stderr
    message, _remedy = _error(proc)
    assert "not a Python interpreter" in message
    assert "healthy" not in out.read_text()


def test_a_refused_target_under_a_non_root_hangdoctor_is_no_all_clear(tmp_path: Path) -> None:
    """GIVEN a shell running root's asyncio service and hangdoctor as uid 65534 WHEN
    hangdoctor is given the shell's pid THEN the refusal on the service, exit 2.

    Once the refusal was a note and hangdoctor's own stack an all-clear.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to run hangdoctor as uid 65534")
    as_nobody = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
    hd = f'{as_nobody} "$0" -m hangdoctor diagnose --pid $$; echo "rc=$?"'
    # the service prints READY once its loop runs; the shell waits for that line
    ready = tmp_path / "service.out"
    wait = f'while ! grep -q {READY} "$2"; do sleep 0.05; done'
    script = f'"$0" -c "$1" >"$2" 2>&1 & {wait}; {hd}; kill $!'
    proc = _shell(script, sys.executable, IDLE_LOOP, str(ready))
    assert "rc=2" in proc.stdout, proc.stdout + proc.stderr
    message, remedy = _error(proc)
    assert "belongs to user root (uid 0) and you are user nobody" in message
    assert "sudo" in remedy
    assert "HEALTHY" not in proc.stdout


def test_a_python_process_with_no_event_loop(python_target: StartTarget) -> None:  # noqa: F811
    """GIVEN a Python program that runs no event loop THEN exit 2, "No event loop in pid N",
    with the remedy to point at the server or use --match (once HEALTHY, exit 0)."""
    target = python_target(NO_LOOP)
    proc = run_hangdoctor("diagnose", "--pid", str(target.pid))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _error(proc)
    assert message.startswith(f"No event loop in pid {target.pid} (`")
    assert "it runs Python but no asyncio or uvloop event loop" in message
    assert "Point hangdoctor at the server process itself" in remedy
    assert "--match TEXT" in remedy


def test_several_unrelated_programs_under_one_pid_are_listed(
    python_target: StartTarget,  # noqa: F811
) -> None:
    """GIVEN a shell (a container's PID 1) running two unrelated asyncio programs WHEN
    `diagnose --pid SHELL` THEN they are listed and the user asked which, exit 2."""
    script = '"$0" -c "$1" one & "$0" -c "$1" two & wait'
    shell = python_target(argv=["sh", "-c", script, sys.executable, IDLE_LOOP], count=2)
    kids = sorted(c.pid for c in children(shell.pid) if c.is_python)
    assert len(kids) == 2
    proc = run_hangdoctor("diagnose", "--pid", str(shell.pid))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _error(proc)
    program = process_info(shell.pid).program
    assert message.startswith(
        f"2 unrelated Python programs run under PID {shell.pid} ({program}): {kids[0]} `"
    )
    assert f"; {kids[1]} `" in message
    assert remedy.startswith("Pass --pid PID of the one to diagnose")


def test_the_servers_listing_shows_their_ports(
    python_target: StartTarget,  # noqa: F811
    tmp_path: Path,
) -> None:
    """GIVEN two real uvicorn servers started alike but for the port WHEN they must be
    chosen between THEN each is listed with its port (once cut before it)."""
    (tmp_path / "hd_listing_app.py").write_text(ASGI_APP, encoding="utf-8")
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    for port in ports:
        argv = [sys.executable, "-m", "uvicorn", "hd_listing_app:app", "--app-dir", str(tmp_path)]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        python_target(argv=argv, marker="Application startup complete")
    proc = run_hangdoctor("diagnose", "--match", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _error(proc)
    assert message.startswith(f"2 processes match {str(tmp_path)!r}: ")
    for port in ports:
        assert f" ... --port {port}`" in message
    assert remedy == "Pass --pid PID to choose one."
    data = json.dumps(message)  # one line: no wrapping cut the listing either
    assert "\\n" not in data
