"""Catch in the act: which process is the server, and capturing it off the probe's loop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hangdoctor.model import Verdict
from hangdoctor.probe.catch import Catcher, server_pids

# A parent that listens on a port and forks a child sharing the socket (like a
# pre-fork server), then runs an asyncio loop that blocks in time.sleep.
LISTENER = """
import asyncio, os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(s.getsockname()[1], child, flush=True)

async def main():
    await asyncio.sleep(0.1)
    time.sleep(60)  # blocks the loop

asyncio.run(main())
"""


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """(process, port, forked child pid): a listening Python process whose loop is blocked."""
    child = 0
    script = tmp_path / "listener.py"  # a real file: the analysis reads the blocking line
    script.write_text(LISTENER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        port, child = (int(x) for x in proc.stdout.readline().split())
        yield proc, port, child
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_server_pids_picks_the_master(listener: tuple[subprocess.Popen[str], int, int]) -> None:
    """Parent and forked child both hold the socket: the parent (the master) is the target."""
    proc, port, _child = listener
    pids, note = server_pids(port)
    assert pids == [proc.pid] and note is None


def test_server_pids_never_ourselves() -> None:
    """A port this very process listens on is no target: sampling ourselves would stall us."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        pids, note = server_pids(s.getsockname()[1])
    assert pids == []
    assert note is not None and "--pid" in note


@pytest.mark.e2e
def test_catcher_captures_in_a_thread(listener: tuple[subprocess.Popen[str], int, int]) -> None:
    """trigger() returns at once, the capture runs beside us, and at most `limit` are taken."""
    proc, _port, _child = listener
    time.sleep(0.5)  # the loop is inside time.sleep by now
    catcher = Catcher([proc.pid], clock=time.monotonic, limit=1)
    started = time.monotonic()
    assert catcher.trigger()
    returned_after = time.monotonic() - started
    assert catcher.busy
    assert not catcher.trigger()  # one is running
    assert catcher.wait(30.0)
    assert returned_after < catcher.captures[0].elapsed_s  # it did not wait for the capture
    assert not catcher.trigger()  # the limit is reached
    best = catcher.best()
    assert best is not None and best.diagnosis is not None
    assert best.diagnosis.verdict is Verdict.BLOCKED
    assert "HD201" in [f.code for f in best.diagnosis.findings]
    assert catcher.notes() == []


def test_catcher_reports_a_failed_capture() -> None:
    """A capture that cannot run (the process is gone) becomes a note, not an exception."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    catcher = Catcher([proc.pid], clock=time.monotonic)
    assert catcher.trigger()
    assert catcher.wait(30.0)
    assert catcher.best() is None
    assert len(catcher.notes()) == 1 and "failed" in catcher.notes()[0]
