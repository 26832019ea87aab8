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
    ProcessStoppedError,
)

__all__ = [
    "CAP_SYS_PTRACE",
    "PtraceFacts",
    "permission_problem",
    "preflight",
    "ptrace_diagnosis",
    "ptrace_facts",
    "stopped_error",
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
    # The kernel also wants the target's permitted capabilities to be a subset of
    # ours (CAP_SYS_PTRACE overrides): root without it cannot read a fuller root.
    target_has_more_caps: bool = False


def preflight(pid: int, *, nonblocking: bool = False) -> None:
    """Raise the HangdoctorError that says why py-spy could not read `pid`, if any.

    Checks, in order: the process exists and is not a zombie, runs Python, may be
    ptraced by us, is not stopped, and has no other tracer (irrelevant with
    `nonblocking`). Permission comes before "is it Python" whenever the answer
    to the latter depends on files ptrace rules hide (/proc/PID/exe, maps): a
    refused read must not pass for a program that is not Python.
    """
    info = process_info(pid)
    _check_alive(info)
    evidence = python_evidence(info)
    if evidence is False and info.exe is not None:
        raise _not_python(info)  # the exe could be read: that answer needs no permission
    problem = permission_problem(ptrace_facts(pid))
    if problem is not None:
        raise problem
    if evidence is False or (evidence is None and not info.is_python):
        raise _not_python(info)
    free_threaded = free_threaded_error(info)  # py-spy would misread it: never guess
    if free_threaded is not None:
        raise free_threaded
    _check_running(info)
    if not nonblocking:
        traced = _already_traced(pid)
        if traced is not None:
            raise traced


def stopped_error(pid: int, program: str) -> ProcessStoppedError:
    """The error for a process in group stop (state T), shared with the sampler."""
    return ProcessStoppedError(
        f"Process {pid} ({program}) is stopped (state T: SIGSTOP, or Ctrl-Z in its terminal), "
        "so it answers nothing and py-spy cannot sample it.",
        f"Resume it with `kill -CONT {pid}` (or `fg` in the shell that stopped it), then "
        "diagnose again (hangdoctor does not resume a process it did not stop).",
    )


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
        target_has_more_caps=bool(_caps(status, "CapPrm") & ~_caps(own, "CapPrm")),
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
    yama_allows = scope is None or scope == 0
    if not other_user and yama_allows and not facts.target_has_more_caps:
        return None
    if facts.in_container and not facts.bounding_has_cap and (other_user or not yama_allows):
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
        if facts.in_container and facts.our_uid != 0:
            # capabilities.add fills the bounding set, but the kernel gives a non-root
            # process none of it (Kubernetes sets no ambient capabilities).
            remedy += (
                " In a container running as non-root, `capabilities.add: [SYS_PTRACE]` gives "
                "this user nothing: run hangdoctor as root with the capability (`kubectl debug "
                f"--profile=general`), or as the target's user; see {_DOCS}."
            )
        return NotPermittedError(
            f"Process {pid} ({facts.program}) belongs to {_user(_owner(facts))} and you are "
            f"{_user(facts.our_uid)}, and without CAP_SYS_PTRACE ptrace may only attach "
            "to your own processes.",
            remedy,
        )
    if facts.target_has_more_caps:
        return NotPermittedError(
            f"Process {pid} ({facts.program}) holds capabilities hangdoctor lacks, and without "
            "CAP_SYS_PTRACE the kernel lets a process read only processes whose capabilities "
            "are a subset of its own (a server started with full root rights, read from a "
            "shell that dropped some).",
            "Run hangdoctor with the target's capabilities: as plain root on the host "
            f"(`{sudo}`, outside capsh or any wrapper that drops capabilities), or beside it "
            "in the same container (`docker exec`, `kubectl exec`), where both have the same "
            f"set; see {_DOCS}.",
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


def _check_running(info: ProcessInfo) -> None:
    # `t` (tracing stop) is a debugger's hold: the already-traced check names the tracer.
    if info.state == "T":
        raise stopped_error(info.pid, info.program)


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
    same_user = ""
    if facts.target_uids and _owner(facts) != facts.our_uid and not facts.ptrace_scope:
        # Without Yama (or at scope 0) the target's own uid needs no capability at all,
        # and root keeps CAP_SETUID in Docker's default set: the one remedy needing no restart.
        owner = _owner(facts)
        same_user = (
            f" Or run hangdoctor as the target's user, which needs no capability: "
            f"`setpriv --reuid={owner} --regid={_gid(facts.pid, owner)} --clear-groups "
            f"$(command -v hangdoctor) diagnose --pid {facts.pid}`."
        )
    return NotPermittedError(
        f"py-spy cannot read process {facts.pid} ({facts.program}) because {reason}, and "
        "hangdoctor runs without the CAP_SYS_PTRACE capability, which is missing from its "
        "bounding set (a container's default), so not even root or sudo has it here.",
        "Give the container the capability: `docker run --cap-add SYS_PTRACE`, compose "
        "`cap_add: [SYS_PTRACE]`, Kubernetes `securityContext: {capabilities: {add: "
        '["SYS_PTRACE"]}}` (only for a container that runs as root), or attach a root debug '
        "container with `kubectl debug -it POD --image=python:3.12-slim --target=CONTAINER "
        f"--profile=general`; see {_DOCS}.{same_user}",
    )


def _gid(pid: int, uid: int) -> int:
    gids = _ids(_read_text(f"/proc/{pid}/status"), "Gid")
    if len(gids) > 1:
        return gids[1]
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


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


def _caps(status: str, key: str) -> int:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1], 16)
    return 0


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
