"""Check, before py-spy attaches, that it can: the process lives, runs Python, may be traced.

py-spy's own messages for these cases are misleading ("Failed to get process
executable name", "Permission Denied: try sudo" when sudo would not help), so
each case is recognised here from /proc and said in one sentence with the exact
remedy. `ptrace_diagnosis` gives the same sentences after py-spy itself failed.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from hangdoctor.capture.freethreading import free_threaded_error
from hangdoctor.capture.procs import ProcessInfo, process_info, python_evidence
from hangdoctor.errors import (
    AlreadyTracedError,
    HangdoctorError,
    NotPermittedError,
    NotPythonError,
    ProcessGoneError,
)

__all__ = [
    "CAP_SYS_PTRACE",
    "PtraceFacts",
    "permission_problem",
    "preflight",
    "ptrace_diagnosis",
    "ptrace_facts",
    "tracer_of",
]

CAP_SYS_PTRACE = 19
_DOCS = "docs/permissions.md"
_SUDO = "sudo $(command -v hangdoctor) diagnose --pid {pid}"
_CONTAINER_HINTS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio", "podman")


@dataclass(frozen=True)
class PtraceFacts:
    """What decides whether ptrace on `pid` is allowed, as read from /proc and /proc/sys."""

    pid: int
    program: str
    target_uids: tuple[int, ...]  # real, effective, saved: all must be ours without the cap
    our_uid: int
    has_cap_sys_ptrace: bool  # in our effective set
    bounding_has_cap: bool  # False: no sudo can give it inside this container
    ptrace_scope: int | None  # kernel.yama.ptrace_scope; None without Yama
    in_container: bool


def preflight(pid: int, *, nonblocking: bool = False) -> None:
    """Raise the HangdoctorError that says why py-spy could not read `pid`, if any.

    Checks, in order: the process exists, is not a zombie, runs Python, may be
    ptraced by us, and has no other tracer (irrelevant with `nonblocking`).
    """
    info = process_info(pid)
    _check_alive(info)
    evidence = python_evidence(info)
    if evidence is False:
        raise _not_python(info)
    problem = permission_problem(ptrace_facts(pid))
    if problem is not None:
        raise problem
    if evidence is None and not info.is_python:
        raise _not_python(info)
    free_threaded = free_threaded_error(info)  # py-spy would misread it: never guess
    if free_threaded is not None:
        raise free_threaded
    if not nonblocking:
        traced = _already_traced(pid)
        if traced is not None:
            raise traced


def ptrace_diagnosis(pid: int, *, nonblocking: bool = False) -> HangdoctorError:
    """Explain a ptrace refusal py-spy reported, in preflight's words.

    Always returns an error: when none of the known causes applies, one that
    names the remaining suspects (a seccomp profile or security module).
    """
    try:
        info = process_info(pid)
        _check_alive(info)
    except ProcessGoneError as exc:
        return exc
    if not nonblocking:
        traced = _already_traced(pid)
        if traced is not None:
            return traced
    facts = ptrace_facts(pid)
    problem = permission_problem(facts)
    if problem is not None:
        return problem
    if facts.in_container and not facts.has_cap_sys_ptrace:
        return _container_error(facts, "the kernel refused ptrace without it")
    return NotPermittedError(
        f"The kernel refused py-spy access to process {pid} ({facts.program}) although "
        "the usual ptrace rules allow it, so a seccomp profile or a security module "
        "(AppArmor, SELinux) blocks ptrace here.",
        f"Run as root (`{_SUDO.format(pid=pid)}`); in a container add the SYS_PTRACE "
        f"capability (`docker run --cap-add SYS_PTRACE ...`); see {_DOCS}.",
    )


def ptrace_facts(pid: int) -> PtraceFacts:
    """Read everything `permission_problem` decides on."""
    status = _read_text(f"/proc/{pid}/status")
    own = _read_text("/proc/self/status")
    return PtraceFacts(
        pid=pid,
        program=_program(pid),
        target_uids=_ids(status, "Uid")[:3],
        our_uid=os.getuid(),
        has_cap_sys_ptrace=_has_cap(own, "CapEff"),
        bounding_has_cap=_has_cap(own, "CapBnd"),
        ptrace_scope=_ptrace_scope(),
        in_container=_in_container(own),
    )


def permission_problem(facts: PtraceFacts) -> NotPermittedError | None:
    """The NotPermittedError these facts lead to, or None when ptrace is allowed.

    Kernel rule: without CAP_SYS_PTRACE a tracer may attach only to a process
    whose real, effective and saved uids are its own, and Yama narrows that
    further: scope 1 to its descendants (py-spy never is an ancestor of a
    server), scope 2 to CAP_SYS_PTRACE holders, scope 3 to nobody.
    """
    pid, scope = facts.pid, facts.ptrace_scope
    if scope is not None and scope >= 3:
        return NotPermittedError(
            f"ptrace is disabled on this machine (kernel.yama.ptrace_scope={scope}), so no "
            f"user, not even root, can read process {pid} ({facts.program}).",
            "Scope 3 cannot be lowered until a reboot: put `kernel.yama.ptrace_scope = 1` in "
            f"/etc/sysctl.d/10-ptrace.conf and reboot, then run with sudo; see {_DOCS}.",
        )
    if facts.has_cap_sys_ptrace:
        return None
    other_user = any(uid != facts.our_uid for uid in facts.target_uids)
    if not other_user and (scope is None or scope == 0):
        return None
    if facts.in_container and not facts.bounding_has_cap:
        reason = (
            f"it belongs to {_user(_owner(facts))}, not to {_user(facts.our_uid)}"
            if other_user
            else f"kernel.yama.ptrace_scope={scope} on the host"
        )
        return _container_error(facts, reason)
    sudo = _SUDO.format(pid=pid)
    if other_user:
        remedy = (
            f"Run hangdoctor as root: `{sudo}`."
            if scope or _owner(facts) == 0
            else f"Run hangdoctor as that user "
            f"(`sudo -u {_name(_owner(facts))} $(command -v hangdoctor) diagnose --pid {pid}`)"
            f" or as root (`{sudo}`)."
        )
        return NotPermittedError(
            f"Process {pid} ({facts.program}) belongs to {_user(_owner(facts))} and you are "
            f"{_user(facts.our_uid)}, and without CAP_SYS_PTRACE ptrace may only attach "
            "to your own processes.",
            remedy,
        )
    if scope == 2:
        return NotPermittedError(
            "kernel.yama.ptrace_scope=2 lets only processes with CAP_SYS_PTRACE attach, so "
            f"py-spy cannot read process {pid} ({facts.program}) without it.",
            f"Run hangdoctor as root (`{sudo}`), or allow same-user attach with "
            f"`sudo sysctl kernel.yama.ptrace_scope=0`; see {_DOCS}.",
        )
    return NotPermittedError(
        f"kernel.yama.ptrace_scope={scope} lets a process attach only to its own descendants, "
        f"and process {pid} ({facts.program}) is not a descendant of py-spy.",
        f"Run hangdoctor as root (`{sudo}`), or allow same-user attach with "
        f"`sudo sysctl kernel.yama.ptrace_scope=0` (persistent: see {_DOCS}).",
    )


def tracer_of(pid: int) -> int:
    """The pid tracing `pid` (a debugger, strace, py-spy), 0 when none."""
    ids = _ids(_read_text(f"/proc/{pid}/status"), "TracerPid")
    return ids[0] if ids else 0


def _check_alive(info: ProcessInfo) -> None:
    if info.state in ("Z", "X", "x"):
        raise ProcessGoneError(
            f"Process {info.pid} ({info.program}) has exited and is a zombie waiting for its "
            f"parent (PID {info.ppid}) to collect it.",
            "Nothing is left to read: list the live servers with `hangdoctor diagnose` "
            "(no arguments) or `pgrep -af uvicorn` and pass a live --pid.",
        )


def _not_python(info: ProcessInfo) -> NotPythonError:
    return NotPythonError(
        f"Process {info.pid} runs `{info.program}`, not a Python interpreter, so it has no "
        "Python stack to read.",
        "Pass the PID of the Python server itself: `pgrep -af python` lists them "
        "(a shell or launcher that starts Python is its parent).",
    )


def _already_traced(pid: int) -> AlreadyTracedError | None:
    tracer = tracer_of(pid)
    if tracer == 0:
        return None
    return AlreadyTracedError(
        f"Process {pid} is already traced by PID {tracer} ({_program(tracer)}), and only one "
        "tracer can attach at a time.",
        f"Detach that debugger (or end PID {tracer}), or retry with `--nonblocking`: py-spy "
        "then reads memory without pausing the process, so samples may be inconsistent.",
    )


def _container_error(facts: PtraceFacts, reason: str) -> NotPermittedError:
    return NotPermittedError(
        "This container lacks the CAP_SYS_PTRACE capability that py-spy needs to read "
        f"process {facts.pid} ({facts.program}), because {reason}.",
        "Add it to the container: `docker run --cap-add SYS_PTRACE`, compose "
        "`cap_add: [SYS_PTRACE]`, Kubernetes `securityContext: {capabilities: {add: "
        '["SYS_PTRACE"]}}`, or attach a debug container with `kubectl debug -it POD '
        "--image=python:3.12-slim --target=CONTAINER --profile=general`; "
        f"see {_DOCS}.",
    )


def _owner(facts: PtraceFacts) -> int:
    # the first uid that is not ours is the one the user must become
    return next((u for u in facts.target_uids if u != facts.our_uid), facts.our_uid)


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _user(uid: int) -> str:
    return f"user {_name(uid)} (uid {uid})"


def _program(pid: int) -> str:
    try:
        return process_info(pid).program
    except ProcessGoneError:
        return "exited"


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _ids(status: str, key: str) -> tuple[int, ...]:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return tuple(int(x) for x in line.split()[1:])
    return ()


def _has_cap(status: str, key: str) -> bool:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    return False


def _ptrace_scope() -> int | None:
    text = _read_text("/proc/sys/kernel/yama/ptrace_scope").strip()
    return int(text) if text.isdigit() else None


def _in_container(own_status: str) -> bool:
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    # systemd-nspawn and podman set `container`; it is lower-case by convention
    if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("container"):  # noqa: SIM112
        return True
    cgroups = _read_text("/proc/1/cgroup") + _read_text("/proc/self/cgroup")
    if any(hint in cgroups for hint in _CONTAINER_HINTS):
        return True
    # a bounding set without CAP_SYS_PTRACE is how container runtimes drop it
    return not _has_cap(own_status, "CapBnd")
