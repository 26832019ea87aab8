"""Run the real py-spy binary on a live process, with a hard deadline, into a `Snapshot`.

py-spy pauses the target while it reads the stacks (unless `--nonblocking`).
If py-spy dies or is killed mid-way, the kernel detaches it, but a target
that was in a group stop can stay stopped: `resume_if_left_stopped` sends
SIGCONT to a process we left in state T, so we never hang what we diagnose.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from hangdoctor.capture.preflight import ptrace_diagnosis
from hangdoctor.capture.procs import ProcessInfo, process_info, python_evidence
from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json
from hangdoctor.errors import (
    BadDumpError,
    CaptureError,
    HangdoctorError,
    NotPythonError,
    ProcessGoneError,
)
from hangdoctor.model import Snapshot

__all__ = ["dump", "find_pyspy", "process_state", "python_version_of", "resume_if_left_stopped"]

log = logging.getLogger(__name__)

_KILL_WAIT_S = 5.0  # reaping a SIGKILLed py-spy: it may sit in the kernel briefly
_VERSION_IN_NAME = re.compile(r"(?:libpython|/python)(\d+\.\d+)")
_PERMISSION = ("permission denied", "operation not permitted", "eperm", "eacces")
_NOT_PYTHON = (
    "failed to find python version",
    "failed to find a python interpreter",
    "failed to find python interpreter",
    "not a python",
)
_GONE = ("no such process", "esrch", "check that the process is running")


def find_pyspy() -> str:
    """The py-spy binary: next to the running interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    raise CaptureError(
        "py-spy is not installed, and hangdoctor needs it to read the stacks of a running process.",
        f"Install it in the same environment: `{sys.executable} -m pip install py-spy`.",
    )


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (S, R, D, T, t, Z...), None when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def resume_if_left_stopped(pid: int, state_before: str | None) -> bool:
    """Send SIGCONT if `pid` is stopped (T) now but was not before; True when we did."""
    if state_before == "T" or process_state(pid) != "T":
        return False
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        return False
    log.warning("process %d was left stopped after py-spy; sent SIGCONT to resume it", pid)
    return True


def python_version_of(pid: int) -> str | None:
    """`3.12` from the libpython the process maps or from its exe name; None if unknown."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if "libpython" in line:
                    m = _VERSION_IN_NAME.search(line)
                    if m:
                        return m.group(1)
    except OSError:
        pass
    try:
        m = _VERSION_IN_NAME.search(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None
    return m.group(1) if m else None


def dump(
    pid: int,
    *,
    locals: bool = False,
    native: bool = False,
    nonblocking: bool = False,
    timeout: float = 5.0,
) -> Snapshot:
    """One `py-spy dump --json` of `pid` as a Snapshot, within `timeout` seconds.

    Raises ProcessGoneError, NotPythonError, NotPermittedError, AlreadyTracedError
    (with preflight's sentences) or CaptureError (timeout, anything else).
    """
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    pyspy = find_pyspy()
    info = process_info(pid)
    argv = [pyspy, "dump", "--json", "--pid", str(pid)]
    if locals:
        argv.append("--locals")
    if native:
        argv.append("--native")
    if nonblocking:
        argv.append("--nonblocking")
    # The backtrace py-spy adds under RUST_BACKTRACE only buries its error line.
    env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"}
    wall_start, start = time.time(), time.monotonic()
    try:
        out, err, code = _run(argv, env, timeout)
    finally:
        resume_if_left_stopped(pid, info.state)
    duration = time.monotonic() - start
    if code == -1:
        raise CaptureError(
            f"py-spy did not finish within {timeout:g} s while reading process {pid}.",
            "Retry with a larger --timeout; if it keeps happening, the process may be stuck "
            "in the kernel (state D), or try --nonblocking so py-spy does not pause it.",
        )
    source = "py-spy-native" if native else "py-spy"
    if code != 0 and native and _NATIVE_MERGE_FAILED in err:
        # py-spy cannot always line native frames up with Python ones (a limitation of its
        # unwinder on some stacks); the Python frames still name the cause, so take those.
        argv.remove("--native")
        left = max(0.5, timeout - duration)
        try:
            out, err, code = _run(argv, env, left)
        finally:
            resume_if_left_stopped(pid, info.state)
        duration = time.monotonic() - start
        source = "py-spy"
        if code == -1:
            raise CaptureError(
                f"py-spy did not finish within {timeout:g} s while reading process {pid}.",
                "Retry with a larger --timeout, or without --native.",
            )
    if code != 0:
        raise _failure(info, err, native=native, nonblocking=nonblocking)
    try:
        snap = snapshot_from_pyspy_json(
            json.loads(out),
            source=source,
            pid=pid,
            taken_at=wall_start + duration / 2,
            python_version=python_version_of(pid),
            command=info.command,
            root=f"/proc/{pid}/root",
            duration_s=duration,
        )
    except (ValueError, BadDumpError) as exc:
        raise CaptureError(
            f"py-spy printed something that is not a JSON dump for process {pid} ({exc}).",
            f"Run `py-spy dump --json --pid {pid}` yourself to see its output.",
        ) from None
    return replace(snap, cwd=_cwd(pid))


_NATIVE_MERGE_FAILED = "Failed to merge native and python frames"


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[str, str, int]:
    """(stdout, stderr, returncode); returncode -1: the deadline passed and py-spy was killed."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
    )
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "", "", -1
        return out, err, proc.returncode
    finally:
        # Also on Ctrl-C: never leave a py-spy (and so a paused target) behind.
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=_KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                log.warning("py-spy (pid %d) did not exit after SIGKILL", proc.pid)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _failure(info: ProcessInfo, stderr: str, *, native: bool, nonblocking: bool) -> HangdoctorError:
    pid = info.pid
    text = stderr.lower()
    try:
        now = process_info(pid)
    except ProcessGoneError as exc:
        return exc
    if now.state in ("Z", "X") or any(s in text for s in (*_GONE, *_PERMISSION)):
        # py-spy says "Permission Denied: try sudo" or "check that the process is
        # running" for causes sudo would not fix: name the real one.
        return ptrace_diagnosis(pid, nonblocking=nonblocking)
    if any(s in text for s in _NOT_PYTHON) or python_evidence(now) is False:
        return NotPythonError(
            f"Process {pid} runs `{now.program}`, and py-spy found no Python interpreter in it.",
            "Pass the PID of the Python server itself: `pgrep -af python` lists them "
            "(a shell or launcher that starts Python is its parent).",
        )
    last = _last_error_line(stderr)
    if native:
        return CaptureError(
            f"py-spy --native failed on process {pid}: {last}",
            "Retry without --native (native frames are not supported on every platform "
            "and Python build).",
        )
    return CaptureError(
        f"py-spy failed on process {pid}: {last}",
        f"Retry; if it keeps failing, run `py-spy dump --pid {pid}` yourself and report "
        "its output.",
    )


def _last_error_line(stderr: str) -> str:
    """py-spy's error, as "Error: X" plus its most specific "Caused by" line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln.removeprefix("Error:").strip() for ln in lines if ln.startswith("Error")]
    causes = [ln.split(":", 1)[1].strip() for ln in lines if re.match(r"^\d+:", ln)]
    head = errors[-1] if errors else (lines[-1] if lines else "no error message")
    return f"{head} ({causes[-1]})" if causes else head


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
