"""`diagnose --inject`: read the asyncio tasks of a Python 3.10-3.13 process from inside it.

Before 3.14 nothing outside a process can see its suspended coroutines: py-spy
sees threads only. With the user's consent (`--inject`) hangdoctor does what
memray's `attach` and pyrasite do: gdb attaches, makes one thread of the
target call `PyGILState_Ensure(); PyRun_SimpleString(...); PyGILState_Release()`,
and detaches. The code run is `runtime/injected.py`, the runtime's own task
snapshot, on the loop's thread, and it only reads.

What keeps it safe, and what is left:

- The thread is the loop's, and only while the loop is idle: gdb checks that
  the thread sits in the poll system call (epoll_wait, poll, select: from its
  registers, whatever symbols the target's libc has), where it
  holds no libc lock and has released the GIL, so running Python there is what
  a signal handler does between two system calls. The injected code checks in
  turn that no task is in a step and, for a selector loop, that the loop is in
  its `select`. Otherwise gdb detaches, waits a little and tries again; a loop
  that is never idle (blocked, or busy) is not injected into at all: the py-spy
  samples already say why it does not answer.
- Nothing the target keeps changes: the package copy is imported for the read
  and its modules removed again (runtime/injected.py), the private directory
  it was copied to is deleted, and a target left stopped by the attach is resumed.
- The risk that stays, said in `--help`: the target is stopped while gdb works
  (about 0.3 s per read here); and if gdb itself dies during the call (it is
  killed, the deadline passes while another thread holds the GIL for seconds),
  the thread returns to an address gdb no longer guards, and the target crashes.

Files go through a directory made in the target's own /tmp (or /dev/shm),
reached as /proc/PID/root/tmp, so a target in a container root sees them too;
gdb opens the target's binaries in its mount namespace itself. gdb is told to
use no debug info of this machine and calls nothing of the target's libc by
name (see the script's comments): a container's libc is not the host's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hangdoctor.capture.freethreading import free_threaded_evidence
from hangdoctor.capture.procs import DELETED, process_info
from hangdoctor.capture.pyspy import process_state, resume_if_left_stopped
from hangdoctor.capture.remote_tasks import run_bounded
from hangdoctor.errors import CaptureError, HangdoctorError
from hangdoctor.model import Task, task_from_dict
from hangdoctor.runtime.injected import ENTRY_NAME

__all__ = ["LoopBusyError", "check_can_inject", "find_gdb", "inject_tasks"]

_MARK = "HANGDOCTOR-GDB "
_MAX_ANSWER_BYTES = 256 * 1024 * 1024  # 10,000 tasks 8 frames deep take ~30 MB
_TRIES = 8  # attaches per read, _PAUSE_S apart: a loop under load is idle most of the time
_PAUSE_S = 0.05

# Run by gdb's own Python (`gdb -batch -x`): attach, find an idle loop thread, inject, detach.
# P holds the parameters; it prints one line _MARK + JSON: {"tid", "rc"} or {"error", ...}.
_GDB_SCRIPT = r"""
import json, re, time
import gdb

def say(answer):
    print(MARK + json.dumps(answer), flush=True)

def quiet(command):
    try:
        gdb.execute(command, to_string=True)
    except gdb.error:
        pass  # an older gdb without that setting

# the thread must be stopped inside one of these system calls: x86_64 and aarch64 numbers
POLL_SYSCALLS = {
    "x86_64": {7, 23, 232, 270, 271, 281, 441},  # poll select epoll_wait pselect6 ppoll
    "aarch64": {22, 72, 73, 441},  # epoll_pwait pselect6 ppoll epoll_pwait2
}
POLL_NAMES = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
              "pselect", "pselect6"}

def in_poll(thread):
    # From the registers, not from symbol names: a target in another root has another libc,
    # stripped, whose internal syscall wrapper has no name gdb can give. Stopped inside a
    # system call, the instruction before pc is the syscall instruction and the kernel
    # keeps the call's number ($orig_rax; x8 on aarch64).
    thread.switch()
    arch = gdb.selected_frame().architecture().name()
    pc = int(gdb.parse_and_eval("$pc"))
    memory = gdb.selected_inferior()
    try:
        if "x86-64" in arch:
            return (bytes(memory.read_memory(pc - 2, 2)) == b"\x0f\x05"
                    and int(gdb.parse_and_eval("$orig_rax")) in POLL_SYSCALLS["x86_64"])
        if "aarch64" in arch:
            return (bytes(memory.read_memory(pc - 4, 4)) == b"\x01\x00\x00\xd4"
                    and int(gdb.parse_and_eval("$x8")) in POLL_SYSCALLS["aarch64"])
    except (gdb.error, gdb.MemoryError):
        return False
    frame = gdb.newest_frame()  # another architecture: the libc function's own name
    for _ in range(5):
        if frame is None:
            return False
        if re.sub(r"^_*(GI_|libc_)?_*", "", frame.name() or "") in POLL_NAMES:
            return True
        frame = frame.older()
    return False

# The files as the target maps them: its executable through /proc/PID/exe, its libraries
# through /proc/PID/root, which follows its chroot and mount namespace. By their own names
# gdb would open this machine's files, and call a function at another build's address.
quiet("set sysroot /proc/%d/root" % P["pid"])
quiet("file /proc/%d/exe" % P["pid"])
# debug info from this machine may belong to another build of the same library (a
# container's libc): gdb would then call its malloc at a wrong address. Symbols come
# from the target's own files only.
for setting in ("set debug-file-directory /nonexistent-hangdoctor",
                "set debuginfod enabled off", "set auto-load python-scripts off",
                "set pagination off", "set confirm off", "set width 0",
                # a signal inside a called function: gdb unwinds the call, the target goes on
                "set unwindonsignal on"):
    quiet(setting)
answer = {"error": "busy", "message": "the loop thread was never idle in poll"}
for attempt in range(P["tries"]):
    try:
        gdb.execute("attach %d" % P["pid"], to_string=True)
    except gdb.error as exc:
        answer = {"error": "attach", "message": str(exc)}
        break
    threads = {t.ptid[1]: t for t in gdb.selected_inferior().threads()}
    chosen = [threads[tid] for tid in P["tids"] if tid in threads and in_poll(threads[tid])]
    if not [tid for tid in P["tids"] if tid in threads]:
        answer = {"error": "no-thread", "message": "no thread %s" % P["tids"]}
    elif chosen:
        chosen[0].switch()
        # No string literal in these calls: gdb would copy it into the target with the
        # libc malloc it finds by name, and in a newer libc than it knows that name may
        # point elsewhere (seen: glibc 2.43, gdb 13). Python's own allocator is called
        # through Python's exported symbol instead, and the code written there.
        code = P["code"].encode() + b"\0"
        try:
            state = int(gdb.parse_and_eval("(int) PyGILState_Ensure()"))
            try:
                buffer = int(gdb.parse_and_eval("(long) PyMem_RawMalloc(%d)" % len(code)))
                if not buffer:
                    raise gdb.error("PyMem_RawMalloc failed")
                try:
                    gdb.selected_inferior().write_memory(buffer, code)
                    call = "(int) PyRun_SimpleString((char *) %d)" % buffer
                    answer = {"tid": chosen[0].ptid[1], "rc": int(gdb.parse_and_eval(call))}
                finally:
                    gdb.parse_and_eval("(void) PyMem_RawFree((void *) %d)" % buffer)
            finally:
                gdb.parse_and_eval("(void) PyGILState_Release(%d)" % state)
        except (gdb.error, gdb.MemoryError) as exc:
            answer = {"error": "call", "message": str(exc).splitlines()[0]}
    quiet("detach")
    if chosen or answer.get("error") == "no-thread":
        break
    time.sleep(P["pause"])
say(answer)
"""


class LoopBusyError(CaptureError):
    """The loop was never idle while gdb looked: nothing was injected."""


def find_gdb() -> str | None:
    return shutil.which("gdb")


def check_can_inject(pid: int) -> None:
    """Raise, in one sentence with the remedy, when `--inject` cannot work on `pid` at all."""
    if find_gdb() is None:
        raise CaptureError(
            "--inject runs gdb to read the tasks from inside the target, and gdb is not "
            "installed here.",
            "Install it (`apt install gdb`, `dnf install gdb`, `apk add gdb`), or leave out "
            "--inject and run the service under `hangdoctor watch` (docs/stuck-requests.md).",
        )
    info = process_info(pid)
    replaced = _replaced_libraries(pid)
    if replaced:
        raise CaptureError(
            f"Process {pid} runs files that were replaced on disk since it started "
            f"({', '.join(replaced[:3])}): gdb would read the new ones and call the target's "
            "functions at the wrong addresses, so --inject is refused.",
            "Restart the service to run the installed files, or leave out --inject and run "
            "it under `hangdoctor watch`.",
        )
    if free_threaded_evidence(info) is not None:
        raise CaptureError(
            f"Process {pid} runs a free-threaded Python; --inject supports the default "
            "(GIL) build only.",
            "Leave out --inject; run the service under `hangdoctor watch` to see its tasks.",
        )


def _replaced_libraries(pid: int) -> list[str]:
    """Python and C libraries `pid` maps from files deleted or replaced since (an upgrade)."""
    found: list[str] = []
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.split(None, 5)[5].strip() if line.count(" ") >= 5 else ""
                name = os.path.basename(path.removesuffix(DELETED))
                if path.endswith(DELETED) and name.startswith(("python", "libpython", "libc.")):
                    found.append(path.removesuffix(DELETED))
    except (OSError, IndexError):
        pass
    return list(dict.fromkeys(found))


def inject_tasks(pid: int, loop_tids: Sequence[int], *, timeout: float = 10.0) -> tuple[Task, ...]:
    """Every asyncio task of the loop on one of `loop_tids`, read inside `pid` while it is idle.

    Raises LoopBusyError when no loop thread was idle, CaptureError otherwise.
    """
    if not loop_tids:
        return ()
    check_can_inject(pid)
    with _private_dir(pid) as (inside, outside):
        out_inside = f"{inside}/answer.json"
        entry = f"{inside}/hangdoctor/runtime/injected.py"
        code = (
            f"exec(compile(__import__('pathlib').Path('{entry}').read_text(), '{entry}', "
            f"'exec'), {{'__name__': '{ENTRY_NAME}', '__file__': '{entry}', "
            f"'OUT_PATH': '{out_inside}'}})"
        )
        gdb = _run_gdb(pid, list(loop_tids), code, timeout)
        if "error" in gdb:
            raise _gdb_error(pid, gdb)
        answer = _read_answer(outside, pid)
    if "error" in answer:
        if answer["error"] == "busy":
            raise _busy(pid, f"was not idle when gdb stopped it ({answer.get('message')})")
        raise CaptureError(
            f"The task read inside process {pid} failed: {answer['error']}: "
            f"{answer.get('message', '')}.",
            "Report it with the target's Python version; meanwhile run the service under "
            "`hangdoctor watch` to see its tasks.",
        )
    host_tid = int(gdb["tid"])
    # numbered by the target's PID namespace in there: the thread gdb chose is this one
    return tuple(task_from_dict({**t, "loop_tid": host_tid}) for t in answer.get("tasks", ()))


def _run_gdb(pid: int, tids: list[int], code: str, timeout: float) -> dict[str, Any]:
    params = {"pid": pid, "tids": tids, "code": code, "tries": _TRIES, "pause": _PAUSE_S}
    script = f"MARK = {_MARK!r}\nP = {json.dumps(params)}\n{_GDB_SCRIPT}"
    gdb = find_gdb()
    assert gdb is not None  # check_can_inject
    before = process_state(pid)
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="hangdoctor-gdb-") as fh:
        fh.write(script)
        fh.flush()
        out, err, code_ = run_bounded([gdb, "-nx", "-batch", "-q", "-x", fh.name], timeout)
    resume_if_left_stopped(pid, before)
    if code_ is None:
        process_info(pid)  # ProcessGoneError when it died meanwhile
        raise CaptureError(
            f"gdb did not finish reading the tasks of process {pid} within {timeout:g} s and "
            "was stopped.",
            "Check that the service still answers; retry with a larger --timeout.",
        )
    for line in reversed(out.splitlines()):
        if line.startswith(_MARK):
            found: dict[str, Any] = json.loads(line[len(_MARK) :])
            return found
    process_info(pid)
    last = (err.strip().splitlines() or [f"exit {code_}"])[-1]
    return {"error": "gdb", "message": last}


def _busy(pid: int, when: str) -> LoopBusyError:
    """No task was read: the loop was running code, not waiting in its poll."""
    return LoopBusyError(
        f"The loop of process {pid} {when}: its tasks were not read.",
        "A loop that is never idle is blocked or busy, which the thread samples show; "
        "retry when it answers again.",
    )


def _gdb_error(pid: int, gdb: dict[str, Any]) -> HangdoctorError:
    kind, message = gdb["error"], str(gdb.get("message", "")).strip()
    if kind == "busy":
        return _busy(pid, f"was never idle in its poll while gdb looked ({_TRIES} tries)")
    if kind == "attach" and ("not permitted" in message or "ptrace" in message.lower()):
        return CaptureError(
            f"gdb may not attach to process {pid}: {message}.",
            "Run hangdoctor as the target's user or as root with CAP_SYS_PTRACE "
            "(docs/permissions.md).",
        )
    return CaptureError(
        f"gdb could not read the tasks of process {pid}: {message or kind}.",
        "Run `gdb -p PID -batch -ex 'info threads'` to see why; meanwhile run the service "
        "under `hangdoctor watch` to see its tasks.",
    )


@contextlib.contextmanager
def _private_dir(pid: int) -> Any:
    """(path as the target sees it, path here) of a new directory holding the package copy.

    Made in the target's /tmp (or /dev/shm) through /proc/PID/root, owned by the
    target's user so it can read the copy and write its answer; deleted at the end.
    """
    uid, gid = _owner(pid)
    made: str | None = None
    reasons: list[str] = []
    for base in ("/tmp", "/dev/shm"):
        try:
            made = tempfile.mkdtemp(prefix="hangdoctor-inject-", dir=f"/proc/{pid}/root{base}")
            inside = f"{base}/{os.path.basename(made)}"
            break
        except OSError as exc:
            reasons.append(f"{base}: {os.strerror(exc.errno or errno.EIO)}")
    if made is None:
        process_info(pid)
        raise CaptureError(
            f"--inject needs a directory the target can read, and hangdoctor can write to "
            f"neither /tmp nor /dev/shm in process {pid}'s filesystem ({'; '.join(reasons)}).",
            "Give the container a writable /tmp (an emptyDir), or run the service under "
            "`hangdoctor watch`.",
        )
    try:
        package = Path(__file__).resolve().parents[1]
        shutil.copytree(
            package,
            Path(made) / "hangdoctor",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "examples", "*.css", "*.js"),
        )
        if os.geteuid() == 0 and uid != 0:
            for root, dirs, files in os.walk(made):
                for name in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
                    os.chown(name, uid, gid, follow_symlinks=False)
        yield inside, made
    except OSError as exc:
        raise CaptureError(
            f"The package copy for --inject could not be written to {inside} in process "
            f"{pid}'s filesystem: {os.strerror(exc.errno or errno.EIO)}.",
            "Free some space there, or run the service under `hangdoctor watch`.",
        ) from None
    finally:
        # the target owns the directory now: never follow what it may have put there
        shutil.rmtree(made, ignore_errors=True)


def _owner(pid: int) -> tuple[int, int]:
    """(euid, egid) of `pid`, as this process numbers them."""
    st = os.stat(f"/proc/{pid}")
    return st.st_uid, st.st_gid


def _read_answer(outside: str, pid: int) -> dict[str, Any]:
    """The JSON answer the injected code wrote, read without following a link it may have put."""
    path = os.path.join(outside, "answer.json")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        process_info(pid)
        raise CaptureError(
            f"The code injected into process {pid} wrote no answer "
            f"({os.strerror(exc.errno or errno.EIO)}): the target's standard error may say why.",
            "Check the service's log; meanwhile run it under `hangdoctor watch` to see its tasks.",
        ) from None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(_MAX_ANSWER_BYTES + 1)
    try:
        if len(raw) > _MAX_ANSWER_BYTES:
            raise ValueError("too large")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise CaptureError(
            f"The answer of the code injected into process {pid} is not its JSON ({exc}).",
            "Report it with the target's Python version.",
        ) from None
    return data
