"""Preflight on real processes: dead, zombie, stopped, not Python, another user's, traced."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.capture.preflight import (
    PtraceFacts,
    permission_problem,
    preflight,
    ptrace_diagnosis,
    ptrace_facts,
    tracer_of,
)
from hangdoctor.errors import (
    AlreadyTracedError,
    NotPermittedError,
    NotPythonError,
    ProcessGoneError,
    ProcessStoppedError,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")
READY = "HD-TARGET-READY"
NOBODY = 65534

# Attaches to argv[1] with PTRACE_SEIZE (the tracee keeps running), then waits.
TRACER = f"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE = 0x4206
if libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), None, None) != 0:
    print("SEIZE-FAILED", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
print({READY!r}, flush=True)
time.sleep(120)
"""

# Runs as an unprivileged user: prints the class and message of what `call` raises.
AS_OTHER_USER = """
import sys
from hangdoctor.capture.preflight import preflight
from hangdoctor.capture.pyspy import dump
from hangdoctor.errors import HangdoctorError
call = {"preflight": preflight, "dump": dump}[sys.argv[1]]
try:
    call(int(sys.argv[2]))
except HangdoctorError as exc:
    print(type(exc).__name__)
    print(exc.message)
    print(exc.remedy)
else:
    print("NO-ERROR")
"""


def _drop_privileges_prefix() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a probe as another user (uid 65534)")
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    pytest.skip("neither setpriv nor runuser is installed")


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """Run AS_OTHER_USER as uid 65534 with a Python that user may execute."""
    prefix = _drop_privileges_prefix()
    # The user must find hangdoctor (PYTHONPATH) and py-spy (PATH), both world-readable.
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": SRC,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for python in dict.fromkeys([sys.executable, shutil.which("python3") or sys.executable]):
        probe = subprocess.run(
            [*prefix, python, "-c", "import hangdoctor.capture.pyspy"],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return subprocess.run(
                [*prefix, python, "-c", AS_OTHER_USER, *args],
                env=env,
                cwd="/",
                capture_output=True,
                text=True,
                timeout=60,
            )
    pytest.skip("no Python interpreter that uid 65534 may execute and import hangdoctor with")


def _facts(**changes: Any) -> PtraceFacts:
    base = PtraceFacts(
        pid=4242,
        program="python3.12",
        target_uids=(1000, 1000, 1000),
        our_uid=1000,
        has_cap_sys_ptrace=False,
        bounding_has_cap=True,
        ptrace_scope=0,
        in_container=False,
    )
    return replace(base, **changes)


def test_dead_pid(dead_pid: int) -> None:
    """A pid nothing runs under: ProcessGoneError naming the pid, remedy lists servers."""
    with pytest.raises(ProcessGoneError) as err:
        preflight(dead_pid)
    assert err.value.message == f"No process with PID {dead_pid} is running."
    assert "pgrep -af uvicorn" in err.value.remedy


def test_zombie() -> None:
    """An exited child not yet reaped is a zombie: ProcessGoneError saying so."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(500):  # poll /proc, not proc.poll(): that would reap it
            with open(f"/proc/{proc.pid}/stat", encoding="utf-8") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.02)
        with pytest.raises(ProcessGoneError) as err:
            preflight(proc.pid)
        assert "zombie" in err.value.message
        assert f"PID {os.getpid()}" in err.value.message  # its parent: us
    finally:
        proc.wait(timeout=30)


def test_not_python(python_target: Callable[..., Any]) -> None:
    """`sleep` is refused with NotPythonError naming the program."""
    target = python_target(argv=["sleep", "120"], count=0)
    with pytest.raises(NotPythonError) as err:
        preflight(target.pid)
    assert err.value.message.startswith(f"Process {target.pid} runs `sleep`, not")
    assert "pgrep -af python" in err.value.remedy


def test_a_plain_python_process_passes(sleeper: Callable[..., Any]) -> None:
    """Our own untraced Python process passes every check."""
    target = sleeper()
    preflight(target.pid)
    assert tracer_of(target.pid) == 0


def test_already_traced(python_target: Callable[..., Any], sleeper: Callable[..., Any]) -> None:
    """A process with a tracer attached: AlreadyTracedError naming the tracer; --nonblocking ok."""
    target = sleeper()
    tracer = python_target(TRACER, str(target.pid))
    assert tracer_of(target.pid) == tracer.pid
    with pytest.raises(AlreadyTracedError) as err:
        preflight(target.pid)
    assert f"already traced by PID {tracer.pid} (python" in err.value.message
    assert "--nonblocking" in err.value.remedy
    preflight(target.pid, nonblocking=True)
    assert isinstance(ptrace_diagnosis(target.pid), AlreadyTracedError)


def test_another_users_process_is_refused_as_such(sleeper: Callable[..., Any]) -> None:
    """Run as uid 65534, preflight on a root-owned process says it belongs to another user."""
    target = sleeper()
    out = _as_nobody("preflight", str(target.pid))
    assert out.returncode == 0, out.stderr
    kind, message, remedy = out.stdout.splitlines()[:3]
    assert kind == "NotPermittedError"
    assert message.startswith(f"Process {target.pid} (")
    assert "belongs to user root (uid 0)" in message
    assert "sudo" in remedy


def test_pyspys_own_refusal_is_translated(sleeper: Callable[..., Any]) -> None:
    """Run as uid 65534, dump() reports the real cause, not py-spy's 'Permission Denied'."""
    target = sleeper()
    out = _as_nobody("dump", str(target.pid))
    assert out.returncode == 0, out.stderr
    kind, message, _remedy = out.stdout.splitlines()[:3]
    assert kind == "NotPermittedError"
    assert "belongs to user root (uid 0)" in message
    assert "Permission Denied" not in out.stdout


def test_facts_of_a_live_process(sleeper: Callable[..., Any]) -> None:
    """ptrace_facts reads the target's uids and our own uid and capabilities from /proc."""
    target = sleeper()
    facts = ptrace_facts(target.pid)
    assert facts.target_uids == (os.getuid(),) * 3
    assert facts.our_uid == os.getuid()
    assert facts.program.startswith("python")
    with open("/proc/self/status", encoding="utf-8") as fh:
        cap_eff = next(ln for ln in fh if ln.startswith("CapEff:")).split()[1]
    assert facts.has_cap_sys_ptrace == bool(int(cap_eff, 16) & (1 << 19))


def test_same_user_without_yama_is_allowed() -> None:
    """Same uid, no CAP_SYS_PTRACE, ptrace_scope 0 or absent: allowed."""
    assert permission_problem(_facts()) is None
    assert permission_problem(_facts(ptrace_scope=None)) is None


def test_capability_overrides_other_user_and_scope() -> None:
    """CAP_SYS_PTRACE allows another user's process under scopes 0-2."""
    for scope in (0, 1, 2):
        facts = _facts(target_uids=(33, 33, 33), has_cap_sys_ptrace=True, ptrace_scope=scope)
        assert permission_problem(facts) is None


def test_other_user_says_which_user_and_how() -> None:
    """Another user's process: names both users; remedy sudo -u with scope 0, root otherwise."""
    problem = permission_problem(_facts(target_uids=(NOBODY, NOBODY, NOBODY)))
    assert problem is not None
    try:
        name = pwd.getpwuid(NOBODY).pw_name
    except KeyError:
        name = f"#{NOBODY}"
    assert f"belongs to user {name} (uid {NOBODY}) and you are" in problem.message
    assert f"sudo -u {name} " in problem.remedy
    strict = permission_problem(_facts(target_uids=(0, 0, 0), ptrace_scope=1))
    assert strict is not None
    assert "sudo -u" not in strict.remedy
    assert "sudo $(command -v hangdoctor) diagnose --pid 4242" in strict.remedy


def test_ptrace_scope_values() -> None:
    """Scope 1 and 2 name the scope and the sysctl remedy; scope 3 blocks even root."""
    one = permission_problem(_facts(ptrace_scope=1))
    assert one is not None
    assert "kernel.yama.ptrace_scope=1" in one.message
    assert "descendant" in one.message
    assert "sudo sysctl kernel.yama.ptrace_scope=0" in one.remedy
    two = permission_problem(_facts(ptrace_scope=2))
    assert two is not None
    assert "kernel.yama.ptrace_scope=2" in two.message
    assert "sudo sysctl kernel.yama.ptrace_scope=0" in two.remedy
    three = permission_problem(_facts(ptrace_scope=3, has_cap_sys_ptrace=True))
    assert three is not None
    assert "not even root" in three.message
    assert "reboot" in three.remedy


def test_container_without_the_capability() -> None:
    """A container whose bounding set lacks CAP_SYS_PTRACE: the cap_add/kubectl remedies."""
    facts = _facts(
        ptrace_scope=1, in_container=True, bounding_has_cap=False, our_uid=0, target_uids=(0, 0, 0)
    )
    problem = permission_problem(facts)
    assert isinstance(problem, NotPermittedError)
    assert "runs without the CAP_SYS_PTRACE capability" in problem.message
    assert "not even root or sudo has it" in problem.message
    assert "ptrace_scope=1" in problem.message
    for recipe in ("--cap-add SYS_PTRACE", "cap_add", "SYS_PTRACE", "kubectl debug", "docs/"):
        assert recipe in problem.remedy
    # same user and scope 0: the kernel allows it even without the capability
    assert permission_problem(_facts(in_container=True, bounding_has_cap=False)) is None


def test_a_stopped_process_is_said_with_how_to_resume_it(
    sleeper: Callable[..., Any], wait_state: Callable[..., Any]
) -> None:
    """A process in state T (SIGSTOP, Ctrl-Z): ProcessStoppedError naming `kill -CONT PID`.

    Also with --nonblocking, where py-spy would read its frozen stack as idle; and the
    process is left stopped: hangdoctor resumes only what it stopped itself.
    """
    target = sleeper()
    os.kill(target.pid, signal.SIGSTOP)
    assert wait_state(target.pid, lambda s: s == "T") == "T"
    for nonblocking in (False, True):
        with pytest.raises(ProcessStoppedError) as err:
            preflight(target.pid, nonblocking=nonblocking)
        assert err.value.message.startswith(f"Process {target.pid} (python")
        assert "is stopped (state T: SIGSTOP, or Ctrl-Z in its terminal)" in err.value.message
        assert err.value.remedy.startswith(f"Resume it with `kill -CONT {target.pid}`")
    assert wait_state(target.pid, lambda s: s is not None) == "T"


def test_permission_is_checked_before_is_it_python_when_the_exe_is_hidden() -> None:
    """Another user's process whose exe link cannot be read: the refusal, not "not Python".

    Facts as root without CAP_SYS_PTRACE sees them for uid 65534's server in a container.
    """
    facts = _facts(target_uids=(NOBODY,) * 3, our_uid=0, in_container=True, bounding_has_cap=False)
    problem = permission_problem(facts)
    assert problem is not None
    assert problem.message.startswith("py-spy cannot read process 4242 (python3.12) because it ")
    assert f"(uid {NOBODY}), not to user root (uid 0)" in problem.message
    # Yama absent or at 0: the target's own uid needs no capability, and says how
    assert f"`setpriv --reuid={NOBODY} --regid=" in problem.remedy
    scoped = permission_problem(replace(facts, ptrace_scope=1))
    assert scoped is not None and "setpriv" not in scoped.remedy


def test_non_root_in_a_container_is_told_capabilities_add_does_not_reach_it() -> None:
    """A non-root container user: `capabilities.add` fills the bounding set but not its own."""
    problem = permission_problem(
        _facts(target_uids=(0, 0, 0), our_uid=1000, in_container=True, bounding_has_cap=True)
    )
    assert problem is not None
    assert "`capabilities.add: [SYS_PTRACE]` gives this user nothing" in problem.remedy
    assert "kubectl debug --profile=general" in problem.remedy
    outside = permission_problem(_facts(target_uids=(0, 0, 0), our_uid=1000))
    assert outside is not None and "capabilities.add" not in outside.remedy


def test_a_target_with_more_capabilities_needs_them_or_cap_sys_ptrace() -> None:
    """Same uid, but the target holds capabilities we lack: refused, unless we hold the cap."""
    problem = permission_problem(
        _facts(our_uid=0, target_uids=(0, 0, 0), target_has_more_caps=True)
    )
    assert problem is not None
    assert "capabilities are a subset of its own" in problem.message
    assert "docker exec" in problem.remedy
    assert (
        permission_problem(
            _facts(target_has_more_caps=True, has_cap_sys_ptrace=True, target_uids=(0, 0, 0))
        )
        is None
    )
