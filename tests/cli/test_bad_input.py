"""Bad input gets one clear sentence and the remedy, exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.conftest import run_hangdoctor


def _assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "remedy: " in proc.stderr, proc.stderr
    for needle in needles:
        assert needle.lower() in proc.stderr.lower(), proc.stderr


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A root-owned Python process that does nothing for a minute."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL
    )
    yield proc
    proc.kill()
    proc.wait(5)


def test_dead_pid() -> None:
    """A PID that no longer exists says so."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    out = run_hangdoctor("diagnose", "--pid", str(proc.pid))
    _assert_clean_failure(out, str(proc.pid))


def test_not_a_python_process() -> None:
    """A non-Python process (sleep) is named as such."""
    sleep = subprocess.Popen(["sleep", "60"])
    try:
        out = run_hangdoctor("diagnose", "--pid", str(sleep.pid))
    finally:
        sleep.kill()
        sleep.wait(5)
    _assert_clean_failure(out, "python")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process of another user")
def test_no_permission_for_another_users_process(sleeper: subprocess.Popen[bytes]) -> None:
    """An unprivileged user diagnosing a root-owned process is told why and what to do."""
    out = run_hangdoctor("diagnose", "--pid", str(sleeper.pid), user="65534")
    _assert_clean_failure(out, "user")


def test_no_matching_process() -> None:
    """--match with no match says nothing matched and how to choose."""
    out = run_hangdoctor("diagnose", "--match", "no-such-process-7f3a9c")
    _assert_clean_failure(out, "no-such-process-7f3a9c")


def test_pid_and_match_together_is_a_usage_error() -> None:
    """Conflicting options are a usage error (exit 2), not a crash."""
    out = run_hangdoctor("diagnose", "--pid", "1", "--match", "x")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "either --pid or --match" in out.stderr


def test_unknown_rule() -> None:
    """explain with an unknown code lists what exists."""
    out = run_hangdoctor("explain", "HD999")
    _assert_clean_failure(out, "HD101")
