"""What `hangdoctor watch` says when nothing could be watched.

A command in which no watchdog ever starts (not Python, or no event loop) is said to
be unwatched instead of running silently. (What watch hands a server in another
environment is tested from a wheel install, in tests/test_wheel.py.)
"""

from __future__ import annotations

import sys

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
