"""Find the processes to look at, from /proc only.

Servers fork workers (uvicorn --workers, gunicorn) and py-spy's `--subprocesses`
reports only the parent of a JSON dump, so the family of a server is built here
from one pass over /proc: the master plus every Python descendant.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hangdoctor.errors import NoTargetError, ProcessGoneError

__all__ = [
    "DELETED",
    "SERVER_PROGRAMS",
    "ProcessInfo",
    "children",
    "expand_targets",
    "find_servers",
    "listening_pids",
    "match_processes",
    "process_info",
    "python_evidence",
    "resolve_targets",
]

# what the kernel appends to /proc/PID/exe and maps paths whose file was replaced on disk
DELETED = " (deleted)"

SERVER_PROGRAMS = ("uvicorn", "gunicorn", "hypercorn", "granian")

_PROC = "/proc"
# python, python3, python3.12, python3.13t, python3.12d, pythonw
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?[a-z]?(-dbg)?$")
_LIBPYTHON = re.compile(r"/libpython\d+(\.\d+)?[a-z]?\.so")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it at the moment it was read."""

    pid: int
    ppid: int
    argv: tuple[str, ...]
    exe: str | None  # None when /proc/PID/exe is unreadable (another user, zombie, kernel)
    uid: int  # effective uid
    state: str  # the state letter of /proc/PID/stat: R S D T t Z X I ...

    @property
    def command(self) -> str:
        """The command line for display, quoted where a shell would need it."""
        if not self.argv:
            return f"[{_basename(self.exe) or self.pid}]"
        return shlex.join(self.argv)

    @property
    def program(self) -> str:
        """The short program name: the exe's basename, else argv[0]'s."""
        return _basename(self.exe) or (_basename(self.argv[0]) if self.argv else str(self.pid))

    @property
    def is_python(self) -> bool:
        """Whether this process runs a CPython interpreter py-spy can read."""
        evidence = python_evidence(self)
        return _argv_looks_python(self.argv) if evidence is None else evidence


def python_evidence(info: ProcessInfo) -> bool | None:
    """True/False when the exe or the mapped libraries say so; None when they are unreadable.

    A console script (`uvicorn`, `gunicorn`) runs under its shebang interpreter,
    so the exe is python; an embedding program loads libpython.
    """
    if info.exe is not None and _PYTHON_NAME.match(_basename(info.exe)):
        return True
    try:
        with open(f"{_PROC}/{info.pid}/maps", encoding="utf-8", errors="replace") as fh:
            fields = [line.split(None, 5) for line in fh]
        paths = {f[5].strip() for f in fields if len(f) == 6}
    except OSError:
        paths = set()
    if not paths:
        # Empty maps (a read refused without CAP_SYS_PTRACE, a kernel thread) prove nothing.
        return None if info.exe is None else False
    # The exe link may be hidden while maps is not: the main binary is mapped there too.
    return any(_LIBPYTHON.search(p) or _PYTHON_NAME.match(_basename(p)) for p in paths)


def _argv_looks_python(argv: tuple[str, ...]) -> bool:
    # Only consulted when exe and maps cannot be read (another user's process):
    # then the command line is all there is.
    if not argv:
        return False
    return bool(_PYTHON_NAME.match(_basename(argv[0]))) or any(
        _basename(a.split(":", 1)[0]) in SERVER_PROGRAMS for a in argv[:2]
    )


def _basename(path: str | None) -> str:
    if not path:
        return ""
    if path.endswith(DELETED):  # the binary was upgraded under a running process
        path = path.removesuffix(DELETED)
    return path.rstrip("/").rsplit("/", 1)[-1]


def process_info(pid: int) -> ProcessInfo:
    """Read one process from /proc; ProcessGoneError if it does not exist."""
    info = _read(pid)
    if info is None:
        raise ProcessGoneError(
            f"No process with PID {pid} is running.",
            "List the running servers with `hangdoctor diagnose` (no arguments) "
            "or `pgrep -af uvicorn`, then pass the right --pid.",
        )
    return info


def _read(pid: int) -> ProcessInfo | None:
    if pid <= 0:
        return None
    base = f"{_PROC}/{pid}"
    try:
        with open(f"{base}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
        with open(f"{base}/status", encoding="utf-8", errors="replace") as fh:
            status = fh.read()
        with open(f"{base}/cmdline", "rb") as fh:
            raw_argv = fh.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields start after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 2:
        return None
    state, ppid = fields[0], int(fields[1])
    uid = _status_ids(status, "Uid")
    argv = tuple(
        a.decode("utf-8", "surrogateescape") for a in raw_argv.rstrip(b"\0").split(b"\0") if a
    )
    try:
        exe: str | None = os.readlink(f"{base}/exe")
    except OSError:
        exe = None
    return ProcessInfo(
        pid=pid,
        ppid=ppid,
        argv=argv,
        exe=exe,
        uid=uid[1] if len(uid) > 1 else -1,
        state=state,
    )


def _status_ids(status: str, key: str) -> tuple[int, ...]:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return tuple(int(x) for x in line.split()[1:])
    return ()


def _all_pids() -> Iterator[int]:
    for name in os.listdir(_PROC):
        if name.isdigit():
            yield int(name)


def _parent_map() -> dict[int, int]:
    """pid -> ppid for every process, read from /proc/PID/stat only (cheap)."""
    parents: dict[int, int] = {}
    for pid in _all_pids():
        try:
            with open(f"{_PROC}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2:
            parents[pid] = int(fields[1])
    return parents


def _descendants(pid: int, parents: dict[int, int]) -> list[int]:
    kids: dict[int, list[int]] = {}
    for child, parent in parents.items():
        kids.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in kids.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return sorted(found)


def _infos(pids: Iterable[int]) -> list[ProcessInfo]:
    return [info for info in (_read(p) for p in pids) if info is not None]


def children(pid: int) -> list[ProcessInfo]:
    """Every descendant of `pid` (children, grandchildren...), by pid."""
    return _infos(_descendants(pid, _parent_map()))


def expand_targets(pid: int) -> list[ProcessInfo]:
    """The process itself, then every Python descendant by pid (a server's workers).

    hangdoctor itself is never a target: a --pid that is one of its ancestors (the
    shell that runs it) would take in its own process, its py-spy children and
    whatever launched it, and their healthy stacks would read as an all-clear.
    A named process that is not Python (a shell, an init, a launcher) stands for
    the Python program under it; with several unrelated ones the user must choose.
    """
    first = process_info(pid)
    parents = _parent_map()
    me = os.getpid()
    if pid == me:
        raise NoTargetError(
            f"PID {pid} is this hangdoctor process itself.",
            "Pass the PID of the server: `hangdoctor diagnose` with no arguments lists them.",
        )
    below = set(_descendants(pid, parents))
    ours: set[int] = set()
    if me in below:
        ours = {me, *_descendants(me, parents), *(_ancestors(me, parents) & below)}
    kids = [c for c in _infos(sorted(below - ours)) if c.is_python]
    if first.is_python or not kids:
        return [first, *kids]
    programs = _top_most(kids, parents)
    if len(programs) > 1:
        raise NoTargetError(
            f"{len(programs)} unrelated Python programs run under PID {pid} "
            f"({first.program}): {_listing(programs)}.",
            "Pass --pid PID of the one to diagnose (or --match TEXT, a word of its command line).",
        )
    # the one program and its workers; the launcher itself has no Python stack to read
    return kids


def _ancestors(pid: int, parents: dict[int, int]) -> set[int]:
    seen: set[int] = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        pid = parents.get(pid, 0)
    return seen


def _top_most(matches: list[ProcessInfo], parents: dict[int, int]) -> list[ProcessInfo]:
    """Drop every match that has another match among its ancestors (a worker of a master)."""
    matched = {m.pid for m in matches}
    return [m for m in matches if not (_ancestors(m.ppid, parents) & matched)]


def _candidates(parents: dict[int, int]) -> list[ProcessInfo]:
    # Never ourselves, nor whatever started us (a shell, sudo, `sh -c "..."`): their
    # command lines contain the very words we look for.
    excluded = _ancestors(os.getpid(), parents)
    return [i for i in _infos(sorted(parents)) if i.pid not in excluded and i.argv]


def _is_server(info: ProcessInfo) -> bool:
    argv = info.argv
    # `gunicorn: master [app]` when setproctitle rewrote the command line
    first = argv[0].split(":", 1)[0] if argv[0].startswith(SERVER_PROGRAMS) else argv[0]
    if _basename(first) in SERVER_PROGRAMS:
        return True
    if len(argv) > 1 and _PYTHON_NAME.match(_basename(argv[0])):
        return _runs_server(argv[1:])
    return False


def _runs_server(args: tuple[str, ...]) -> bool:
    """Whether interpreter arguments run a server: `-m uvicorn`, or the console script."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return i + 1 < len(args) and args[i + 1].split(".", 1)[0] in SERVER_PROGRAMS
        if arg.startswith("-m"):
            return arg[2:].split(".", 1)[0] in SERVER_PROGRAMS
        if arg == "-c":
            return False
        if not arg.startswith("-"):
            # a console script runs as `python /venv/bin/uvicorn ...`
            return _basename(arg) in SERVER_PROGRAMS
        i += 2 if arg in ("-W", "-X", "--check-hash-based-pycs") else 1
    return False


def find_servers() -> list[ProcessInfo]:
    """Running uvicorn/gunicorn/hypercorn/granian servers, one entry per family, by pid."""
    parents = _parent_map()
    return _top_most([c for c in _candidates(parents) if _is_server(c)], parents)


def match_processes(text: str) -> list[ProcessInfo]:
    """Processes whose full command line contains `text` (like `pgrep -f`), one per family."""
    parents = _parent_map()
    found = [c for c in _candidates(parents) if text in " ".join(c.argv)]
    return _top_most(found, parents)


def _listing(infos: list[ProcessInfo]) -> str:
    return "; ".join(f"{i.pid} `{c}`" for i, c in zip(infos, _telling_apart(infos), strict=True))


def _telling_apart(infos: list[ProcessInfo], limit: int = 80) -> list[str]:
    """Each command line shortened to what tells it from the others.

    Servers started alike share a long prefix (interpreter, module, app, --app-dir)
    and differ only later (`--port 8001`): drop the shared prefix, keep the option
    name before the first difference, and crop only after it.
    """
    commands = [i.command for i in infos]
    if len(infos) < 2 or all(len(c) <= limit for c in commands):
        return [_short(c, limit) for c in commands]
    argvs = [i.argv for i in infos]
    common = 0
    while all(len(a) > common for a in argvs) and len({a[common] for a in argvs}) == 1:
        common += 1
    out: list[str] = []
    for info, command in zip(infos, commands, strict=True):
        argv = info.argv
        if not argv:
            out.append(_short(command, limit))
            continue
        start = min(common, len(argv) - 1)
        if start > 0 and argv[start - 1].startswith("-"):
            start -= 1  # `--port 8001` reads better than `8001`
        if start <= 1 or len(command) <= limit:
            out.append(_short(command, limit))
        else:
            out.append(_short(f"{_basename(argv[0])} ... {shlex.join(argv[start:])}", limit))
    return out


def _short(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."


def resolve_targets(pid: int | None, match: str | None) -> list[ProcessInfo]:
    """The processes `diagnose` looks at: --pid, else --match, else the one running server."""
    if pid is not None:
        return expand_targets(pid)
    if match is not None:
        found = match_processes(match)
        if not found:
            raise NoTargetError(
                f"No running process has {match!r} in its command line.",
                "Check with `pgrep -af " + shlex.quote(match) + "`, then pass --pid PID.",
            )
        if len(found) > 1:
            raise NoTargetError(
                f"{len(found)} processes match {match!r}: {_listing(found)}.",
                "Pass --pid PID to choose one.",
            )
        return expand_targets(found[0].pid)
    servers = find_servers()
    if not servers:
        raise NoTargetError(
            "No uvicorn, gunicorn, hypercorn or granian process was found.",
            "Pass --pid PID, or --match TEXT (a word of the server's command line).",
        )
    if len(servers) > 1:
        raise NoTargetError(
            f"{len(servers)} servers are running: {_listing(servers)}.",
            "Pass --pid PID to choose one.",
        )
    return expand_targets(servers[0].pid)


def _listen_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{_PROC}/net/{table}", encoding="ascii", errors="replace") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue  # no IPv6 in this kernel
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != _LISTEN:
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def listening_pids(port: int) -> list[int]:
    """Pids holding a socket that LISTENs on TCP `port` (any address), by pid.

    Only processes whose fds we may read are seen (our own, or all as root).
    """
    wanted = {f"socket:[{inode}]" for inode in _listen_inodes(port)}
    if not wanted:
        return []
    found: list[int] = []
    for pid in sorted(_all_pids()):
        fd_dir = f"{_PROC}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found
