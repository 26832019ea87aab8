"""The real py-spy binary on real Python processes: frames, locals, deadlines, failures."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.capture.pyspy import (
    dump,
    find_pyspy,
    python_version_of,
    resume_if_left_stopped,
)
from hangdoctor.errors import (
    AlreadyTracedError,
    CaptureError,
    NotPythonError,
    ProcessGoneError,
    ProcessStoppedError,
)
from hangdoctor.model import Frame, Snapshot

READY = "HD-TARGET-READY"
TRACER = f"""
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:  # PTRACE_SEIZE
    sys.exit(1)
print({READY!r}, flush=True)
time.sleep(120)
"""


def _unique() -> str:
    return f"hd_fn_{uuid.uuid4().hex[:12]}"


def _main_frames(snap: Snapshot) -> tuple[Frame, ...]:
    main = [t for t in snap.threads if t.tid == snap.pid]
    if not main and sys.version_info < (3, 11) and len(snap.threads) == 1:
        # --nonblocking (no ptrace) learns a thread's OS id from its thread state, which
        # records it only since 3.11: before, the one thread of a sleeper is the main one
        main = list(snap.threads)
    assert len(main) == 1, snap.threads
    return main[0].frames


def test_find_pyspy_beside_the_interpreter() -> None:
    """The py-spy installed with hangdoctor (next to sys.executable) is the one used."""
    assert find_pyspy() == str(Path(sys.executable).parent / "py-spy")


def test_find_pyspy_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without py-spy beside Python or on PATH: CaptureError with the pip remedy."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CaptureError) as err:
        find_pyspy()
    assert "py-spy is not installed" in err.value.message
    assert "pip install py-spy" in err.value.remedy


def test_dump_of_a_sleeping_function(sleeper: Callable[..., Any]) -> None:
    """The main thread's innermost frame is the function asleep, at the sleep's line."""
    name = _unique()
    target = sleeper(name)
    before = time.time()
    snap = dump(target.pid)
    after = time.time()

    top = _main_frames(snap)[0]
    assert (top.function, top.file, top.line) == (name, "<string>", target.line)
    assert snap.pid == target.pid
    assert snap.source == "py-spy"
    assert snap.root == f"/proc/{target.pid}/root"
    assert snap.cwd == os.getcwd()
    assert snap.command is not None and name in snap.command
    assert snap.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert snap.taken_at is not None and before <= snap.taken_at <= after
    assert snap.duration_s is not None and 0 < snap.duration_s <= after - before
    assert top.locals == ()  # only with locals=True


def test_dump_with_locals_gives_reprs_and_addresses(sleeper: Callable[..., Any]) -> None:
    """--locals reports each local's repr and object address (redaction happens later)."""
    target = sleeper()
    snap = dump(target.pid, locals=True)
    by_name = {x.name: x for x in _main_frames(snap)[0].locals}
    assert by_name["note"].repr == '"hello"'
    assert by_name["api_key"].repr == '"sk-live-0123456789"'
    assert all(isinstance(x.addr, int) and x.addr > 0 for x in by_name.values())


def test_python_version_of_ourselves() -> None:
    """The target's Python version comes from its exe or libpython: ours is known."""
    assert python_version_of(os.getpid()) == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_dump_deadline(sleeper: Callable[..., Any], wait_state: Callable[..., Any]) -> None:
    """A py-spy call past its deadline is killed: CaptureError, and the target keeps running."""
    target = sleeper()
    with pytest.raises(CaptureError) as err:
        dump(target.pid, timeout=1e-6)
    assert "py-spy did not finish within" in err.value.message
    assert wait_state(target.pid, lambda s: s in ("S", "R")) in ("S", "R")
    assert dump(target.pid).pid == target.pid  # and can be read again


def test_dump_rejects_a_non_positive_timeout(sleeper: Callable[..., Any]) -> None:
    """timeout must be > 0."""
    with pytest.raises(ValueError):
        dump(sleeper().pid, timeout=0)


def test_dump_failures_use_preflight_words(
    python_target: Callable[..., Any], dead_pid: int
) -> None:
    """A dead pid and a non-Python program give ProcessGoneError and NotPythonError."""
    with pytest.raises(ProcessGoneError) as gone:
        dump(dead_pid)
    assert gone.value.message == f"No process with PID {dead_pid} is running."

    sleep = python_target(argv=["sleep", "120"], count=0)
    with pytest.raises(NotPythonError) as not_python:
        dump(sleep.pid)
    assert "`sleep`" in not_python.value.message


def test_dump_of_a_traced_process(
    python_target: Callable[..., Any], sleeper: Callable[..., Any]
) -> None:
    """With a tracer attached py-spy fails as AlreadyTracedError; --nonblocking still reads it."""
    name = _unique()
    target = sleeper(name)
    tracer = python_target(TRACER, str(target.pid))
    with pytest.raises(AlreadyTracedError) as err:
        dump(target.pid)
    assert f"PID {tracer.pid}" in err.value.message
    snap = dump(target.pid, nonblocking=True)
    assert _main_frames(snap)[0].function == name


def test_dump_native(sleeper: Callable[..., Any]) -> None:
    """--native either shows the Python frame among the native ones or fails as CaptureError."""
    name = _unique()
    target = sleeper(name)
    try:
        snap = dump(target.pid, native=True)
    except CaptureError as exc:
        assert "--native" in exc.message
        assert "without --native" in exc.remedy
    else:
        assert name in [f.function for f in _main_frames(snap)]


def test_resume_if_left_stopped(
    sleeper: Callable[..., Any], wait_state: Callable[..., Any]
) -> None:
    """A process stopped (T) since before is left alone; one stopped since is resumed."""
    target = sleeper()
    assert resume_if_left_stopped(target.pid, "S") is False  # running: nothing to do

    os.kill(target.pid, signal.SIGSTOP)
    assert wait_state(target.pid, lambda s: s == "T") == "T"
    assert resume_if_left_stopped(target.pid, "T") is False  # it was stopped before us
    assert wait_state(target.pid, lambda s: s is not None) == "T"

    assert resume_if_left_stopped(target.pid, "S") is True
    assert wait_state(target.pid, lambda s: s != "T") in ("S", "R")


def test_dump_of_a_stopped_process(
    sleeper: Callable[..., Any], wait_state: Callable[..., Any]
) -> None:
    """A stopped process is not handed to py-spy (its waitpid error, or a frozen 'idle' stack
    with --nonblocking): ProcessStoppedError, and the process stays stopped."""
    target = sleeper()
    assert dump(target.pid).pid == target.pid
    os.kill(target.pid, signal.SIGSTOP)
    assert wait_state(target.pid, lambda s: s == "T") == "T"
    for nonblocking in (False, True):
        with pytest.raises(ProcessStoppedError) as err:
            dump(target.pid, nonblocking=nonblocking)
        assert f"`kill -CONT {target.pid}`" in err.value.remedy
    assert wait_state(target.pid, lambda s: s is not None) == "T"
