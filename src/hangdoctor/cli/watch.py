"""`hangdoctor watch -- <server command>`: the loop watchdog in every worker, no code change.

The command becomes the server (exec): signals, exit status and the terminal
are the server's own, so nothing is left behind on Ctrl-C. Every Python
process it starts loads the watchdog through `sitecustomize` (see
`hangdoctor.runtime.autoinstall`) and reports each stall, and each request
stuck on a healthy loop (`--stuck-after`), to stderr, or as one JSON line to
`--out`.

Before it becomes the server, watch leaves a small process behind (detached,
in a session of its own) that waits for the first watchdog to start: when the
server exits without one, or none has started within `READY_WAIT_S` seconds,
it says so on stderr (`watch -- sleep 1` would otherwise run silently), then
exits. It never outlives the server, so a pipe on stderr closes with it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click

import hangdoctor
from hangdoctor.cli.options import FiniteFloatRange
from hangdoctor.errors import HangdoctorError
from hangdoctor.runtime.autoinstall import (
    DEFAULT_STUCK_AFTER_S,
    ENV_OUT,
    ENV_PACKAGE,
    ENV_READY,
    ENV_STUCK_AFTER,
    ENV_THRESHOLD,
)

__all__ = ["READY_WAIT_S", "command", "watch_environment"]

# a folder with the start-up hook alone: it is all that goes on the server's PYTHONPATH
_INJECT = Path(__file__).resolve().parents[1] / "runtime" / "_inject"
READY_WAIT_S = 30.0  # a server's first loop runs within seconds, also with a slow app import
_POLL_S = 0.1


def watch_environment(
    base: dict[str, str],
    threshold: float,
    out: Path | None,
    ready: Path | None = None,
    stuck_after: float = DEFAULT_STUCK_AFTER_S,
) -> dict[str, str]:
    """The environment that makes every Python process of a command install the watchdog.

    `stuck_after` 0 turns the stuck-request check off.

    Only the hook's folder goes on `PYTHONPATH`; the hook finds the `hangdoctor` package
    itself (`ENV_PACKAGE`) when the server's environment has none, so none of the other
    packages of hangdoctor's environment become importable by the server.
    """
    env = dict(base)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_INJECT) + (os.pathsep + path if path else "")
    env[ENV_THRESHOLD] = repr(threshold)
    env[ENV_STUCK_AFTER] = repr(float(stuck_after))
    env[ENV_PACKAGE] = str(Path(hangdoctor.__file__).resolve().parent)
    for name, value in ((ENV_OUT, out), (ENV_READY, ready)):
        if value is not None:
            env[name] = str(value.resolve())
        else:
            env.pop(name, None)
    return env


def _resolve(argv: Sequence[str]) -> str:
    program = argv[0]
    if os.sep in program:
        if not os.access(program, os.X_OK):
            raise HangdoctorError(
                f"The server command {program!r} is not an executable file.",
                "Check the path, or give the command as you would run it in a shell.",
            )
        return program
    found = shutil.which(program)
    if found is None:
        raise HangdoctorError(
            f"The server command {program!r} was not found on PATH.",
            "Install it in this environment, or give its full path "
            "(e.g. `hangdoctor watch -- .venv/bin/uvicorn app.main:app`).",
        )
    return found


@click.command("watch", context_settings={"ignore_unknown_options": True})
@click.option(
    "--threshold",
    type=FiniteFloatRange(0.001, 60.0),
    default=0.25,
    show_default=True,
    help="Report a stall when the event loop does not answer for this many seconds.",
)
@click.option(
    "--stuck-after",
    type=FiniteFloatRange(0.0, 86400.0),
    default=DEFAULT_STUCK_AFTER_S,
    show_default=True,
    metavar="SECONDS",
    help=(
        "Report requests stuck on a healthy loop (an await deadlock, a drained pool, a "
        "future nobody resolves, a shutdown that waits for ever) once a task has waited "
        "this long; deadlocks as soon as a check sees them. 0 turns it off."
    ),
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=(
        "Append each stall and each stuck request as one JSON line to FILE (its `record` "
        'key says "stall" or "stuck") instead of printing it on stderr.'
    ),
)
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def command(
    threshold: float, stuck_after: float, out: Path | None, server: tuple[str, ...]
) -> None:
    """Run a server with the loop watchdog in every worker, without changing its code.

    \b
    hangdoctor watch -- uvicorn app.main:app --workers 2
    hangdoctor watch --out stalls.jsonl -- gunicorn -k uvicorn.workers.UvicornWorker app:app

    Each stall is reported when it ends: its duration, the catalog code, your
    file:line, what the loop waited for and the request that was running (with
    HangdoctorMiddleware installed). Requests stuck while the loop stays healthy
    (HD601-HD606: tasks waiting on one another, a shutdown waiting for open
    streams) are reported once per episode, `--stuck-after` seconds after they
    stopped moving: which tasks, what each waits on, who holds it, at which
    lines. The server's Python must be 3.10 or newer and must honour PYTHONPATH
    (not `python -I` or `-E`).
    """
    argv = list(server)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise HangdoctorError(
            "No server command was given.",
            "Put it after `--`: hangdoctor watch -- uvicorn app.main:app",
        )
    program = _resolve(argv)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()
        except OSError as exc:
            raise HangdoctorError(
                f"Cannot write the record log {str(out)!r}: {exc.strerror or exc}.",
                "Choose a writable path for --out.",
            ) from None
    sys.stdout.flush()
    sys.stderr.flush()
    ready: Path | None = None
    exec_failed: int | None = None
    try:
        ready = Path(tempfile.mkdtemp(prefix="hangdoctor-watch-")) / "ready"
        exec_failed = _leave_readiness_check(ready, argv)
    except OSError:
        # no temporary directory, no fork: the server still runs watched, only the warning
        # for a command in which no watchdog starts is lost
        if ready is not None:
            with contextlib.suppress(OSError):
                ready.parent.rmdir()
        ready = None
    env = watch_environment(dict(os.environ), threshold, out, ready, stuck_after)
    try:
        os.execve(program, argv, env)
    except OSError as exc:
        if exec_failed is not None:
            with contextlib.suppress(OSError):
                os.write(exec_failed, b"x")  # the check has nothing to wait for: let it go
        raise HangdoctorError(
            f"Cannot start {argv[0]!r}: {exc.strerror or exc}.",
            "Check that the command runs on its own first.",
        ) from None


def _leave_readiness_check(ready: Path, argv: Sequence[str]) -> int:
    """Fork the process that reports a server in which no watchdog ever started.

    Returns the write end of a close-on-exec pipe: a successful exec closes it, which tells
    the check that the server runs; a byte written to it means the exec failed.
    """
    read_end, write_end = os.pipe()  # both close-on-exec (PEP 446)
    server = os.getpid()
    child = os.fork()
    if child == 0:  # the forked check: tests see what it prints, never its return
        status = 0
        try:
            os.close(write_end)
            os.setsid()  # out of the terminal's process group: Ctrl-C is for the server
            if os.fork() == 0:  # detached: never a child the server would have to reap
                _quiet_stdio()
                _readiness_check(server, read_end, ready, argv)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(read_end)
    os.waitpid(child, 0)
    return write_end


def _quiet_stdio() -> None:
    """Let go of stdin and stdout: a pipe the server's reader holds must close when it ends."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)


def _readiness_check(server: int, exec_pipe: int, ready: Path, argv: Sequence[str]) -> None:
    try:
        if os.read(exec_pipe, 1):
            return  # the exec failed; watch has said why
        deadline = time.monotonic() + READY_WAIT_S
        while not ready.exists():
            if not _running(server):
                if not ready.exists():
                    _say_unwatched(argv, "before it exited")
                return
            if time.monotonic() > deadline:
                _say_unwatched(argv, f"in {READY_WAIT_S:g} s")
                return
            select.select([], [], [], _POLL_S)
    finally:
        with contextlib.suppress(OSError):
            ready.unlink()
        with contextlib.suppress(OSError):
            ready.parent.rmdir()


def _running(pid: int) -> bool:
    """Whether `pid` still runs: a zombie (exited, not yet reaped by its parent) does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _say_unwatched(argv: Sequence[str], when: str) -> None:
    command = shlex.join(argv)
    if len(command) > 80:
        command = command[:77] + "..."
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(
            f"hangdoctor watch: no watchdog was installed: no Python process of `{command}` "
            f"ran an event loop {when} (it is not Python, runs no asyncio loop, or ignores "
            "PYTHONPATH as `python -I` and `-E` do).\n"
            "  Run a Python asyncio server under watch, e.g. "
            "`hangdoctor watch -- uvicorn app.main:app`.\n"
        )
        sys.stderr.flush()
