"""Run the real py-spy binary on a live process, with a hard deadline, into a `Snapshot`.

py-spy pauses the target while it reads the stacks (unless `--nonblocking`).
If py-spy dies or is killed mid-way, the kernel detaches it, but a target
that was in a group stop can stay stopped: `resume_if_left_stopped` sends
SIGCONT to a process we left in state T, so we never hang what we diagnose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from hangdoctor.capture.preflight import ptrace_diagnosis, stopped_error
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
    if info.state == "T":
        # py-spy fails on it (waitpid) or, with --nonblocking, reads a frozen stack
        # that looks idle: neither is a sample of a running service.
        raise stopped_error(pid, info.program)
    with _launcher(pid, pyspy) as (command, pyspy_pid, fds):
        return _dump(
            info,
            command,
            pyspy_pid,
            fds,
            locals=locals,
            native=native,
            nonblocking=nonblocking,
            timeout=timeout,
        )


def _dump(
    info: ProcessInfo,
    command: list[str],
    pyspy_pid: int,
    fds: tuple[int, ...],
    *,
    locals: bool,
    native: bool,
    nonblocking: bool,
    timeout: float,
) -> Snapshot:
    pid = info.pid
    argv = [*command, "dump", "--json", "--pid", str(pyspy_pid)]
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
        out, err, code = _run(argv, env, timeout, fds)
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
            out, err, code = _run(argv, env, left, fds)
        finally:
            resume_if_left_stopped(pid, info.state)
        duration = time.monotonic() - start
        source = "py-spy"
        if code == -1:
            raise CaptureError(
                f"py-spy did not finish within {timeout:g} s while reading process {pid}.",
                "Retry with a larger --timeout, or without --native.",
            )
    if code != 0 and fds and err.startswith("nsenter:"):
        raise CaptureError(
            f"Process {pid} runs chrooted inside its own mount namespace, so py-spy must run "
            f"in there to find its files, and nsenter could not enter: {_last_error_line(err)}",
            "Run hangdoctor as root on the host, or inside the target's root: "
            f"`nsenter --target {pid} --mount --pid --root --wd=/ hangdoctor diagnose`.",
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
    if pyspy_pid != pid:
        # py-spy ran inside the target's PID namespace and numbered threads as it does
        host = _host_tids(pid)
        threads = tuple(replace(t, tid=host.get(t.tid, t.tid)) for t in snap.threads)
        snap = replace(snap, threads=threads)
    return replace(snap, cwd=_cwd(pid))


def _host_tids(pid: int) -> dict[int, int]:
    """Thread ids as the target's PID namespace numbers them -> as ours does."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        out[_inner_id(f"/proc/{pid}/task/{tid}/status", int(tid))] = int(tid)
    return out


_NATIVE_MERGE_FAILED = "Failed to merge native and python frames"


@contextlib.contextmanager
def _launcher(pid: int, pyspy: str) -> Iterator[tuple[list[str], int, tuple[int, ...]]]:
    """(the command that runs py-spy, the pid to give it, the fds it inherits) for `pid`.

    py-spy opens the target's binary and libpython at /proc/PID/root + the path
    in /proc/PID/maps. For a process chrooted inside its mount namespace (not
    pivot_root'ed, as container runtimes do) the maps path seen from here still
    carries the chroot's own prefix, so that file does not exist: py-spy must
    run in the target's mount and PID namespaces and root, where both agree.
    Its binary is static and goes in as an open fd, so the target's root needs
    no py-spy of its own.
    """
    root = _chroot_of(pid)
    if root is None:
        yield [pyspy], pid, ()
        return
    nsenter = shutil.which("nsenter")
    if nsenter is None or not os.path.isdir(f"/proc/{pid}/root/proc/{_ns_pid(pid)}"):
        missing = (
            "nsenter (util-linux) is not installed"
            if nsenter is None
            else (f"{root} has no /proc mounted")
        )
        raise CaptureError(
            f"Process {pid} runs chrooted in {root}, so py-spy must run in there to find its "
            f"files, and {missing}.",
            "Run hangdoctor inside that root (`chroot ROOT hangdoctor diagnose`), with /proc "
            "mounted there, or install util-linux.",
        )
    fd = os.open(pyspy, os.O_RDONLY)
    try:
        command = [nsenter, f"--target={pid}", "--mount", "--pid", "--root", "--wd=/", "--"]
        yield [*command, f"/proc/self/fd/{fd}"], _ns_pid(pid), (fd,)
    finally:
        os.close(fd)


def _chroot_of(pid: int) -> str | None:
    """The target's root when the paths in its maps carry that root's prefix, else None."""
    try:
        root = os.readlink(f"/proc/{pid}/root").rstrip("/")
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return root if root and exe.startswith(root + "/") else None


def _ns_pid(pid: int) -> int:
    """`pid` as its own PID namespace numbers it."""
    return _inner_id(f"/proc/{pid}/status", pid)


def _inner_id(status_path: str, default: int) -> int:
    """NSpid's last field: the id in the innermost PID namespace; `default` when unsaid."""
    try:
        with open(status_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return default


def _run(
    argv: list[str], env: dict[str, str], timeout: float, fds: tuple[int, ...] = ()
) -> tuple[str, str, int]:
    """(stdout, stderr, returncode); returncode -1: the deadline passed and py-spy was killed."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        pass_fds=fds,
        # its own group: nsenter forks py-spy, and a kill must reach both
        start_new_session=bool(fds),
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
            if fds:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
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
    if now.state == "T":  # stopped while py-spy attached (Ctrl-Z, SIGSTOP mid-sample)
        return stopped_error(pid, now.program)
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
    """The target's cwd as the target sees it: frame paths are relative to its own root.

    Read from outside a chroot, /proc/PID/cwd names the host's path
    (`/var/lib/c1/rootfs/srv/app`) while the frames say `/srv/app/...`.
    """
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    try:
        root = os.readlink(f"/proc/{pid}/root").rstrip("/")
    except OSError:
        return cwd
    if root and (cwd == root or cwd.startswith(root + "/")):
        return cwd[len(root) :] or "/"
    return cwd
