"""`hangdoctor demo` runs to its end on the bundled app and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from tests.conftest import ROOT

from hangdoctor.capture.procs import children

pytestmark = pytest.mark.e2e


def test_demo_runs_to_the_end() -> None:
    """The demo exits 0, shows the hang, HD101 at the `with` line, the fix, and the fixed app."""
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "hangdoctor", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "HD101" in out
    assert "no answer within" in out
    assert "cancel_futures=True" in out
    assert "0 timed out" in out
    assert "Traceback" not in out + proc.stderr
    assert "hd-expect" not in out  # the example app's source, as users see it: no test markers


def test_demo_ctrl_c_leaves_no_server() -> None:
    """Ctrl-C (SIGINT) in the middle of the demo stops the servers it started."""
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hangdoctor", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
        env=env,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"pid " not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        kids = [p.pid for p in children(proc.pid)]
        assert kids, "the demo started a server"
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    time.sleep(0.5)
    alive = [k for k in kids if os.path.exists(f"/proc/{k}") and _state(k) != "Z"]
    assert alive == [], alive


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"
