"""Real target processes for the capture tests, always killed by PID at teardown.

Each target starts in its own session, so its process group id is its pid:
teardown kills that group (the target and anything it spawned, such as
uvicorn workers) by that id while the target is still our unreaped child, so
the id cannot have been reused.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

READY = "HD-TARGET-READY"
START_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Target:
    """A started process: its pid and what it printed until it was ready."""

    pid: int
    output: str
    proc: subprocess.Popen[bytes]


StartTarget = Callable[..., Target]


def _wait_ready(proc: subprocess.Popen[bytes], marker: str, count: int, deadline: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while buf.decode(errors="replace").count(marker) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"target {proc.pid} not ready; output so far:\n{buf!r}")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(
                    f"target {proc.pid} exited ({proc.wait(timeout=5)}) before it was ready; "
                    f"output:\n{buf.decode(errors='replace')}"
                )
            buf += chunk
    return buf.decode(errors="replace")


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def python_target() -> Iterator[StartTarget]:
    """Factory: start(code, *args, marker=READY, count=1, cwd=None, argv=None, pass_fds=())."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        code: str = "",
        *args: str,
        marker: str = READY,
        count: int = 1,
        cwd: str | Path | None = None,
        argv: Sequence[str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Target:
        cmd = list(argv) if argv is not None else [sys.executable, "-c", textwrap.dedent(code)]
        proc = subprocess.Popen(
            [*cmd, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        started.append(proc)
        output = _wait_ready(proc, marker, count, time.monotonic() + START_DEADLINE_S)
        return Target(pid=proc.pid, output=output, proc=proc)

    try:
        yield start
    finally:
        for proc in reversed(started):  # tracers before their tracees
            _end(proc)


@dataclass(frozen=True)
class Sleeper:
    """A Python process whose main thread sleeps inside `function`, at `line` of `<string>`."""

    pid: int
    function: str
    line: int
    token: str


SLEEPER = """\
import sys, time
TOKEN = {token!r}
def {function}():
    api_key = "sk-live-0123456789"
    note = "hello"
    print({ready!r}, flush=True)
    time.sleep(120)
{function}()
"""
SLEEP_LINE = 7  # the line of `time.sleep(120)` in SLEEPER


@pytest.fixture
def sleeper(python_target: StartTarget) -> Callable[..., Sleeper]:
    """Factory: start a Python process sleeping in a function named `function`."""

    def start(function: str = "hd_unique_sleeper", token: str = "") -> Sleeper:
        code = SLEEPER.format(function=function, token=token, ready=READY)
        target = python_target(code)
        return Sleeper(pid=target.pid, function=function, line=SLEEP_LINE, token=token)

    return start


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped: nothing runs under it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def _state_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


WaitState = Callable[[int, Callable[[str | None], bool]], str | None]


@pytest.fixture
def wait_state() -> WaitState:
    """wait(pid, predicate): poll /proc/PID/stat until predicate(state); fail after 10 s."""

    def wait(pid: int, wanted: Callable[[str | None], bool]) -> str | None:
        deadline = time.monotonic() + 10.0
        state = _state_of(pid)
        while not wanted(state):
            if time.monotonic() > deadline:
                pytest.fail(f"process {pid} stayed in state {state!r}")
            time.sleep(0.02)
            state = _state_of(pid)
        return state

    return wait
