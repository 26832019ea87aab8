"""Every asyncio task of a live CPython 3.14+ process, read from outside, as model `Task`s.

CPython 3.14 publishes where its asyncio tasks live (the `AsyncioDebug` section of
its `_asyncio` module), and its `_remote_debugging.RemoteUnwinder(pid)` follows
those pointers in another process's memory (process_vm_readv, the same permission
as ptrace, and without stopping it) to each task's await chain and to the tasks
that await it. No cooperation from the target, no injected code.

Why a script run by the target's own interpreter: the reader knows the layout of
only its own minor version, and hangdoctor may run on 3.10-3.13 (or on another
3.1x than the target). So hangdoctor runs a few lines (`_READER`) with the
target's interpreter, `python -I -S -c` (no site, no user paths, no environment),
and parses the JSON they print. The reader opens the files named in the target's
/proc/PID/maps relative to its *own* root, so for a target that sees another
filesystem (a chroot, a container's mount namespace) it runs in there, through
`nsenter --mount --root` (and `--pid`, with the PID as seen inside, for a target
in its own PID namespace), or `chroot /proc/PID/root` where hangdoctor lacks
CAP_SYS_ADMIN but shares the target's PID namespace (a debug container). When
hangdoctor itself runs the target's minor version and sees the same filesystem, it
reads in-process instead: no subprocess at all. One read takes ~20-30 ms through
a subprocess (mostly the interpreter's start), ~1 ms in-process. With many tasks
nearly all of it is `get_all_awaited_by` itself: CPython 3.14.8 caches a fixed
number of the target's pages, so with 10,000 tasks most of its reads become a
process_vm_readv of their own (~430,000 against ~1,200 for 1,000 tasks) and it
takes ~1 s, for ~40 ms of ours (the interpreter's start, tables, `Task`s).

A target older than 3.14 has nothing to read: `supports_remote_tasks` says no and
`read_tasks` returns no tasks, without an error. A free-threaded target is left
alone, as py-spy leaves it (see capture/freethreading.py).

Measured on CPython 3.14.8: `get_all_awaited_by` walks the interpreter's threads
from the main thread on, so the tasks of a loop run in another thread (a loop
started in a `threading.Thread`) are not listed; a server's loop on the main
thread (uvicorn, gunicorn and hypercorn workers) is.

Only what the target's memory says goes into the model: ids, names, frames
(innermost first) and who awaits whom. What a task waits on and what it holds is
inferred by the analysis from the frames and the source.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from typing import Any

from hangdoctor.capture.freethreading import free_threaded_evidence
from hangdoctor.capture.preflight import ptrace_diagnosis
from hangdoctor.capture.procs import DELETED, ProcessInfo, process_info
from hangdoctor.capture.pyspy import _chroot_of, _host_tids, _ns_pid, python_version_of
from hangdoctor.errors import CaptureError, HangdoctorError, ProcessGoneError
from hangdoctor.model import Frame, Task

__all__ = ["MIN_VERSION", "read_tasks", "run_bounded", "supports_remote_tasks", "target_version"]

MIN_VERSION = (3, 14)
_KILL_WAIT_S = 5.0
_VERSION = re.compile(r"^(\d+)\.(\d+)")
# in /proc/PID/maps: extension modules tagged cpython-314, the stdlib in lib/python3.14/
_MAPPED_VERSION = (
    re.compile(r"\.cpython-(3)(\d+)t?d?-"),
    re.compile(r"/python(3)\.(\d+)t?d?/"),
)
_PYTHON_EXE = re.compile(r"^python3(\.\d+)?$")
# PREFIX/lib[/x86_64-linux-gnu]/libpython3.14.so..., PREFIX/lib/python3.14/lib-dynload/...
_PREFIX = re.compile(r"^(.*?)/lib(?:64)?/(?:[^/]+/)?(?:lib)?python(3\.\d+)(?:\.so|/)")
_CAP_SYS_CHROOT = 18
_CAP_SYS_ADMIN = 21

# Run by the target's interpreter (`-I -S -c`, argv[1] = the pid as its /proc numbers it),
# or exec'd here when hangdoctor runs the same minor version. Prints one JSON object:
# {"error": ExceptionName, "errno": n, "message": ...}, or the tasks as tables:
#   "frames":  [[filename, line, funcname], ...], each distinct frame once
#   "stacks":  [[frame index, ...], ...], each distinct await chain once, innermost first
#   "threads": [{"thread": tid, "ids": [...], "names": [...], "stacks": [stack index, ...],
#                "awaited_by": [[task index in "ids", [awaiting task id or name, ...]], ...]}]
# Thousands of requests in the same handler share a few await chains: as tables, 10,000
# tasks are ~0.3 MB of JSON instead of ~4.3 MB, and each chain is parsed and built once.
_READER = r"""
import sys

def _line(f):
    line = getattr(f, "lineno", None)
    if line is None:  # a later release may give a location instead
        loc = getattr(f, "location", None)
        line = getattr(loc, "lineno", None) or (loc[0] if isinstance(loc, tuple) and loc else 0)
    return int(line or 0)

def _row(f):
    # a plain tuple is already the row: the key an unhashable frame was replaced by
    return f if type(f) is tuple else [str(f.filename), _line(f), str(f.funcname)]

def read(pid):
    try:
        import _remote_debugging
    except ImportError as exc:
        return {"error": "ImportError", "errno": None, "message": str(exc)}
    try:
        infos = _remote_debugging.RemoteUnwinder(pid).get_all_awaited_by()
    except Exception as exc:
        ctx = exc.__context__ or exc.__cause__
        return {
            "error": type(exc).__name__,
            "errno": getattr(exc, "errno", None) or getattr(ctx, "errno", None),
            "message": str(exc) + (f" ({ctx})" if ctx is not None else ""),
        }
    chains = {}
    threads = []
    for info in infos:
        ids, names, stacks, awaited = [], [], [], []
        for task in info.awaited_by:
            # a FrameInfo is a tuple: hashable, and equal to another by its fields
            chain = tuple(f for c in task.coroutine_stack for f in c.call_stack)
            try:
                index = chains.get(chain)
            except TypeError:  # a later release's frame with an unhashable field
                chain = tuple((str(f.filename), _line(f), str(f.funcname)) for f in chain)
                index = chains.get(chain)
            if index is None:
                index = chains[chain] = len(chains)
            if task.awaited_by:
                awaited.append([len(ids), [
                    c.task_name if isinstance(c.task_name, int) else str(c.task_name)
                    for c in task.awaited_by
                ]])
            ids.append(int(task.task_id))
            names.append(str(task.task_name))
            stacks.append(index)
        threads.append({
            "thread": int(info.thread_id),
            "ids": ids,
            "names": names,
            "stacks": stacks,
            "awaited_by": awaited,
        })
    frames, rows, stacks = {}, [], []
    for chain in chains:
        stack = []
        for f in chain:
            index = frames.get(f)
            if index is None:
                index = frames[f] = len(rows)
                rows.append(_row(f))
            stack.append(index)
        stacks.append(stack)
    return {"frames": rows, "stacks": stacks, "threads": threads}

def _dump(data):
    # `import json` (it imports re) costs ~8 ms of the interpreter's start, more than the
    # whole encoding: its C helper quotes the strings, the rest is ints and lists
    try:
        from _json import encode_basestring_ascii as q
    except ImportError:
        import json
        return json.dumps(data, separators=(",", ":"))

    def value(v):
        if v is None:
            return "null"
        if isinstance(v, str):
            return q(v)
        if isinstance(v, int):
            return str(int(v))
        if isinstance(v, dict):
            return "{" + ",".join(q(k) + ":" + value(x) for k, x in v.items()) + "}"
        return "[" + ",".join(map(value, v)) + "]"

    if "threads" not in data:
        return value(data)
    threads = ",".join(
        '{"thread":%d,"ids":[%s],"names":[%s],"stacks":[%s],"awaited_by":%s}' % (
            t["thread"],
            ",".join(map(str, t["ids"])),
            ",".join(map(q, t["names"])),
            ",".join(map(str, t["stacks"])),
            value(t["awaited_by"]),
        )
        for t in data["threads"]
    )
    return '{"frames":%s,"stacks":%s,"threads":[%s]}' % (
        value(data["frames"]), value(data["stacks"]), threads
    )

if __name__ == "__main__":
    sys.stdout.write(_dump(read(int(sys.argv[1]))))
"""


def target_version(pid: int) -> tuple[int, int] | None:
    """(3, 14) for a process running CPython 3.14, from /proc; None when unknown."""
    found = python_version_of(pid)
    if found:
        m = _VERSION.match(found)
        if m:
            return int(m.group(1)), int(m.group(2))
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                for pattern in _MAPPED_VERSION:
                    m = pattern.search(line)
                    if m:
                        return int(m.group(1)), int(m.group(2))
    except OSError:
        pass
    return None


def supports_remote_tasks(pid: int) -> bool:
    """Whether `pid` runs a default (GIL) build of CPython 3.14 or later: it has tasks to read."""
    version = target_version(pid)
    if version is None or version < MIN_VERSION:
        return False
    try:
        info = process_info(pid)
    except ProcessGoneError:
        return False
    return free_threaded_evidence(info) is None


def read_tasks(pid: int, *, timeout: float = 5.0) -> tuple[Task, ...]:
    """Every asyncio task of `pid` right now, within `timeout` seconds.

    No tasks (and no error) for a target older than 3.14, a free-threaded one, or
    one that never imported asyncio. Raises ProcessGoneError, NotPermittedError
    (with preflight's sentences) or CaptureError (timeout, anything else).
    """
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    info = process_info(pid)
    version = target_version(pid)
    if version is None or version < MIN_VERSION or free_threaded_evidence(info) is not None:
        return ()
    if _can_read_in_process(pid, version):
        return _tasks(pid, _read_in_process(pid), inner_tids=False)
    data, reader_pid = _read_with_target_python(info, version, timeout)
    # read inside the target's PID namespace: its thread ids are numbered as in there
    return _tasks(pid, data, inner_tids=reader_pid != pid)


def _can_read_in_process(pid: int, version: tuple[int, int]) -> bool:
    """Our interpreter can read `pid` itself: same minor, same build, same filesystem view."""
    if sys.version_info[:2] != version or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False
    try:
        return (
            _chroot_of(pid) is None
            and os.readlink(f"/proc/{pid}/root") == os.readlink("/proc/self/root")
            and _same_namespace(pid, "mnt")
            and _same_namespace(pid, "pid")
        )
    except OSError:
        return False


def _read_in_process(pid: int) -> dict[str, Any]:
    # The same code the target's interpreter would run: one reader, one output shape.
    namespace: dict[str, Any] = {"__name__": "hangdoctor_remote_reader"}
    exec(compile(_READER, "<hangdoctor remote tasks reader>", "exec"), namespace)
    result: dict[str, Any] = namespace["read"](pid)
    return result


def _read_with_target_python(
    info: ProcessInfo, version: tuple[int, int], timeout: float
) -> tuple[dict[str, Any], int]:
    """The reader's output, run by the target's interpreter; and the pid it was given."""
    pid = info.pid
    python, reader_pid = _reader_command(info, version)
    argv = [*python, "-I", "-S", "-c", _READER, str(reader_pid)]
    out, err, code = run_bounded(argv, timeout)
    if code is None:
        raise CaptureError(
            f"Reading the asyncio tasks of process {pid} did not finish within {timeout:g} s.",
            "Retry with a larger --timeout; the thread samples do not depend on it.",
        )
    if code != 0 and python[0] != python[-1] and err.startswith(("nsenter:", "chroot:")):
        raise CaptureError(
            f"Process {pid} sees another filesystem (its own mount namespace or a chroot), so "
            f"its tasks must be read from in there, and {os.path.basename(python[0])} could "
            f"not enter: {_last(err)}",
            "Run hangdoctor as root on the host, or inside the target's container "
            "(`docker exec`, `kubectl exec`).",
        )
    if code != 0:
        process_info(pid)  # ProcessGoneError when it exited meanwhile
        raise CaptureError(
            f"The Python {version[0]}.{version[1]} interpreter that reads the tasks of process "
            f"{pid} failed (exit {code}): {_last(err)}",
            f"Run `{' '.join(python)} -I -S -c 'import _remote_debugging'` to see why.",
        )
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CaptureError(
            f"The reader of process {pid}'s tasks printed something that is not its JSON: "
            f"{out[:200]!r}.",
            "Report it with the target's Python version (`python3 -VV` in its environment).",
        )
    return data, reader_pid


def _reader_command(info: ProcessInfo, version: tuple[int, int]) -> tuple[list[str], int]:
    """(the command that starts an interpreter like the target's, the pid to give the reader).

    The reader must see the target's filesystem. Same view: run the interpreter.
    Otherwise enter it: `nsenter --mount --root` (and `--pid`, with the pid as
    numbered in there) takes CAP_SYS_ADMIN; without it, in the target's own PID
    namespace (`kubectl debug --target`, `docker run --pid=container:X`, both
    without CAP_SYS_ADMIN by default), `chroot /proc/PID/root` does, which takes only
    CAP_SYS_CHROOT.
    """
    pid = info.pid
    inside = _interpreter(pid, version)
    if inside is None:
        raise CaptureError(
            f"Process {pid} runs Python {version[0]}.{version[1]} inside `{info.program}`, and "
            "no python interpreter of that version was found in its filesystem to read its "
            "asyncio tasks with.",
            f"Install python{version[0]}.{version[1]} where the target runs, or run hangdoctor "
            "itself on that version there.",
        )
    root = _chroot_of(pid)
    same_pid_ns = _same_namespace(pid, "pid")
    if root is None and _same_namespace(pid, "mnt") and same_pid_ns:
        return [inside], pid
    nsenter, chroot = shutil.which("nsenter"), shutil.which("chroot")
    if nsenter is not None and _has_capability(_CAP_SYS_ADMIN):
        command = [nsenter, f"--target={pid}", "--mount", "--root", "--wd=/"]
        if not same_pid_ns:
            command.append("--pid")
        return [*command, "--", inside], (pid if same_pid_ns else _ns_pid(pid))
    if chroot is not None and same_pid_ns and _has_capability(_CAP_SYS_CHROOT):
        return [chroot, f"/proc/{pid}/root", inside], pid
    raise CaptureError(
        f"Process {pid} sees another filesystem (its own mount namespace or a chroot), so its "
        "asyncio tasks must be read from in there, and hangdoctor can enter it neither with "
        "nsenter (CAP_SYS_ADMIN) nor with chroot (CAP_SYS_CHROOT, in its PID namespace).",
        "Run hangdoctor as root on the host, or inside the target's container "
        "(`docker exec`, `kubectl exec`).",
    )


def _interpreter(pid: int, version: tuple[int, int]) -> str | None:
    """A python of the target's minor version, as the target names it; None when there is none.

    The target's exe when it is a python (after an upgrade deleted it, the new one
    at the same path: the reader finds the old one's symbols in memory); else, for
    an embedding program (uWSGI) or a renamed interpreter, `PREFIX/bin/pythonX.Y`
    beside the libpython or the standard library it maps. Never another program:
    it is run with an interpreter's command line.
    """
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    exe = exe.removesuffix(DELETED)
    root = _chroot_of(pid)
    minor = f"{version[0]}.{version[1]}"
    candidates = [exe] if _PYTHON_EXE.match(os.path.basename(exe)) else []
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split(None, 5)
                m = _PREFIX.match(fields[5].strip()) if len(fields) == 6 else None
                if m and m.group(2) == minor:
                    candidates.append(f"{m.group(1)}/bin/python{minor}")
    except OSError:
        pass
    for candidate in dict.fromkeys(candidates):
        # /proc/PID/exe and maps name a chroot's files with its prefix; strip it
        inside = candidate[len(root) :] if root and candidate.startswith(root + "/") else candidate
        path = f"/proc/{pid}/root{inside}"
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return inside
    return None


def _has_capability(bit: int) -> bool:
    """Whether this process has capability `bit` in its effective set."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False


def _same_namespace(pid: int, kind: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return True  # unreadable: nothing says it differs, and nsenter could not enter it either


def run_bounded(argv: list[str], timeout: float) -> tuple[str, str, int | None]:
    """(stdout, stderr, returncode); returncode None: the deadline passed and it was killed."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # nsenter --pid forks: a kill must reach both
    )
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "", "", None
        return out, err, proc.returncode
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_KILL_WAIT_S)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _tasks(pid: int, data: dict[str, Any], *, inner_tids: bool) -> tuple[Task, ...]:
    if "error" in data:
        failure = _failure(pid, data)
        if failure is None:
            return ()
        raise failure
    root = f"/proc/{pid}/root"
    packages: dict[str, bool] = {}
    short: dict[str, str | None] = {}
    # one model object per distinct frame and per distinct await chain, shared by every
    # task that has it (they are frozen): equal chains are then the same tuple, which
    # later comparisons settle by identity
    made: dict[tuple[str, int, str], Frame] = {}
    frames: list[Frame] = []
    for filename, line, funcname in data.get("frames") or ():
        key = (str(filename), int(line), str(funcname))
        found = made.get(key)
        if found is None:
            if key[0] not in short:
                short[key[0]] = _short_file(key[0], root, packages)
            found = made[key] = Frame(
                function=key[2], file=key[0], line=key[1], short_file=short[key[0]]
            )
        frames.append(found)
    chains = [tuple(frames[i] for i in stack) for stack in data.get("stacks") or ()]
    threads: list[dict[str, Any]] = data.get("threads") or []
    host_tids = _host_tids(pid) if inner_tids else {}
    ids_by_name: dict[str, int] | None = None
    tasks: list[Task] = []
    for thread in threads:
        tid = int(thread.get("thread") or 0)
        loop_tid = host_tids.get(tid, tid) if tid else None
        awaited: dict[int, tuple[int, ...]] = {}
        for index, raw_by in thread.get("awaited_by") or ():
            by_ids: list[int] = []
            for by in raw_by:
                # the awaiting task's id; a name where a release gives the name instead
                if isinstance(by, int):
                    by_id: int | None = by
                else:
                    if ids_by_name is None:
                        ids_by_name = _ids_by_name(threads)
                    by_id = ids_by_name.get(str(by))
                if by_id is not None and by_id not in by_ids:
                    by_ids.append(by_id)
            awaited[int(index)] = tuple(by_ids)
        for index, (task_id, name, stack) in enumerate(
            zip(thread["ids"], thread["names"], thread["stacks"], strict=True)
        ):
            tasks.append(
                Task(
                    id=int(task_id),
                    name=str(name),
                    frames=chains[stack],
                    awaited_by=awaited.get(index, ()),
                    loop_tid=loop_tid,
                )
            )
    return tuple(tasks)


def _ids_by_name(threads: list[dict[str, Any]]) -> dict[str, int]:
    """Each task name -> the id of the first task of that name."""
    ids_by_name: dict[str, int] = {}
    for thread in threads:
        for task_id, name in zip(thread["ids"], thread["names"], strict=True):
            ids_by_name.setdefault(str(name), int(task_id))
    return ids_by_name


def _failure(pid: int, data: dict[str, Any]) -> HangdoctorError | None:
    """The error for what the reader reported; None when it only means "no tasks"."""
    kind, code, message = data.get("error"), data.get("errno"), str(data.get("message", ""))
    if kind == "RuntimeError" and "AsyncioDebug" in message:
        return None  # asyncio's C module is not loaded: the process has no tasks
    try:
        process_info(pid)
    except ProcessGoneError as exc:
        return exc
    if kind == "PermissionError" or code in (errno.EPERM, errno.EACCES):
        return ptrace_diagnosis(pid, nonblocking=True)
    if kind == "ProcessLookupError" or code == errno.ESRCH:
        return ptrace_diagnosis(pid, nonblocking=True)  # a zombie, or gone meanwhile
    if kind == "ImportError":
        return CaptureError(
            f"Process {pid}'s Python has no _remote_debugging module (built without it), so "
            "its asyncio tasks cannot be read from outside.",
            "Use the in-process watchdog (hangdoctor.runtime) to see tasks on this build.",
        )
    return CaptureError(
        f"CPython's remote debugging could not read the asyncio tasks of process {pid}: "
        f"{kind}: {message}",
        "Retry; the thread samples do not depend on it.",
    )


def _short_file(path: str, root: str, packages: dict[str, bool]) -> str | None:
    """The path from its top-level package on, the way py-spy shortens it.

    py-spy drops every directory above the outermost one that holds an
    `__init__.py`: `/usr/lib/python3.14/asyncio/locks.py` -> `asyncio/locks.py`,
    `/srv/app/api/routes/stream.py` -> `api/routes/stream.py`. The files are
    looked up in the target's root; `packages` caches a directory's answer.
    """
    if not path.startswith("/"):
        return None
    top = os.path.dirname(path)
    while top not in ("", "/"):
        known = packages.get(top)
        if known is None:
            known = packages[top] = os.path.isfile(f"{root}{top}/__init__.py")
        if not known:
            break
        top = os.path.dirname(top)
    return path[len(top) :].lstrip("/")


def _last(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"
