"""What `hangdoctor watch` says when nothing could be watched.

A command in which no watchdog ever starts (not Python, or no event loop) is said to
be unwatched instead of running silently. (What watch hands a server in another
environment is tested from a wheel install, in tests/test_wheel.py.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import run_hangdoctor

pytestmark = pytest.mark.e2e

UNWATCHED = "no watchdog was installed"


def test_a_command_that_is_not_python_is_said_to_be_unwatched() -> None:
    """`watch -- sleep 1` says on stderr that no watchdog could be installed, with the remedy."""
    proc = run_hangdoctor("watch", "--", "sleep", "1", timeout=60)
    assert proc.returncode == 0  # the command's own exit status
    assert f"{UNWATCHED}: no Python process of `sleep 1` ran an event loop" in proc.stderr
    assert "hangdoctor watch -- uvicorn" in proc.stderr and "Traceback" not in proc.stderr


def test_python_without_an_event_loop_is_said_to_be_unwatched() -> None:
    """A Python program that never runs an event loop has nothing to watch: say so."""
    proc = run_hangdoctor("watch", "--", sys.executable, "-c", "print('done')", timeout=60)
    assert proc.stdout == "done\n"
    assert UNWATCHED in proc.stderr, proc.stderr


def test_a_watched_loop_is_not_said_to_be_unwatched() -> None:
    """A program whose loop got its watchdog exits without the warning."""
    code = "import asyncio; asyncio.run(asyncio.sleep(0.3))"
    proc = run_hangdoctor("watch", "--", sys.executable, "-c", code, timeout=60)
    assert proc.returncode == 0
    assert "watching the event loop of pid" in proc.stderr
    assert UNWATCHED not in proc.stderr, proc.stderr


def test_a_long_running_command_without_a_loop_is_said_to_be_unwatched(tmp_path: Path) -> None:
    """No watchdog within READY_WAIT_S while the command still runs: said once, then quiet."""
    from hangdoctor.cli.watch import READY_WAIT_S

    log = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "hangdoctor", "watch", "--", "sleep", "600"]
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + READY_WAIT_S + 30
        while UNWATCHED not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        assert f"`sleep 600` ran an event loop in {READY_WAIT_S:g} s" in text, text
    finally:
        proc.terminate()  # the exec'd `sleep`, by its pid
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
