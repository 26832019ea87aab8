"""Zero-code install: a watchdog for every event loop a process runs.

`hangdoctor watch -- CMD` sets `HANGDOCTOR_WATCH_*` variables and makes every
Python process of CMD call `install_from_env()` at start-up (through the
`sitecustomize` in `_inject`, which finds this package even when the server's
environment lacks it). That wraps
`asyncio`'s `_set_running_loop`, the one function every loop calls in its own
thread when it starts and stops running (asyncio's loops and uvloop's alike,
which binds it when uvloop is imported, so the wrap has to come first). A loop
that starts running gets a `LoopWatchdog`; one that stops loses it. Forked
workers (gunicorn) inherit the wrap; spawned ones (uvicorn --workers) run this
again. The first watchdog of each process touches watch's readiness file, so
watch can say when none ever started (a command that is not Python). Each
watchdog also looks for requests stuck on a healthy loop after
`HANGDOCTOR_WATCH_STUCK_AFTER` seconds (0: not at all); its stuck records go
where its stall records go.

A record that cannot be appended to `--out` (a full disk) is not lost: it goes
to stderr as one line, with the reason.

Standard library only: this runs inside production services.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a loop first runs: most processes of a server never do
    from hangdoctor.runtime.stall import StallRecord
    from hangdoctor.runtime.stuck import StuckRecord
    from hangdoctor.runtime.watchdog import LoopWatchdog

    Record = StallRecord | StuckRecord

__all__ = [
    "ENV_OUT",
    "ENV_PACKAGE",
    "ENV_READY",
    "ENV_STUCK_AFTER",
    "ENV_THRESHOLD",
    "install",
    "install_from_env",
]

ENV_THRESHOLD = "HANGDOCTOR_WATCH_THRESHOLD"
ENV_STUCK_AFTER = "HANGDOCTOR_WATCH_STUCK_AFTER"  # seconds; 0 turns the stuck-task check off
DEFAULT_STUCK_AFTER_S = 30.0  # analysis.tasks's default, not imported: this loads in every process
ENV_OUT = "HANGDOCTOR_WATCH_OUT"
ENV_READY = "HANGDOCTOR_WATCH_READY"  # a file the first watchdog of each process touches
# the hangdoctor package directory the start-up hook loads when the server's environment
# has none; `_inject/sitecustomize.py` spells the name too (it runs before any import of ours)
ENV_PACKAGE = "HANGDOCTOR_WATCH_PACKAGE"

_installed: list[bool] = []
_by_thread: dict[int, LoopWatchdog] = {}
_announced: dict[int, bool] = {}  # by pid: a forked child announces itself again


def install_from_env() -> bool:
    """Install when `hangdoctor watch` asked for it; False when it did not."""
    raw = os.environ.get(ENV_THRESHOLD)
    if not raw:
        return False
    try:
        threshold = float(raw)
    except ValueError:
        sys.stderr.write(f"hangdoctor watch: {ENV_THRESHOLD}={raw!r} is not a number\n")
        return False
    stuck_after: float | None = DEFAULT_STUCK_AFTER_S
    raw_stuck = os.environ.get(ENV_STUCK_AFTER)
    if raw_stuck:
        try:
            stuck_after = float(raw_stuck)
        except ValueError:
            sys.stderr.write(
                f"hangdoctor watch: {ENV_STUCK_AFTER}={raw_stuck!r} is not a number; "
                f"stuck requests are looked for after {DEFAULT_STUCK_AFTER_S:g} s\n"
            )
        else:
            if not 0 < stuck_after < float("inf"):
                stuck_after = None  # 0 (or anything not a positive time): off
    install(threshold, out=os.environ.get(ENV_OUT) or None, stuck_after=stuck_after)
    return True


def install(
    threshold: float = 0.25,
    *,
    out: str | None = None,
    stuck_after: float | None = DEFAULT_STUCK_AFTER_S,
) -> None:
    """Watch every event loop this process runs from now on; report to `out` or stderr.

    `out` is a JSONL file: one record per line (`StallRecord`, `StuckRecord`: the
    `record` key tells them apart), appended with one write each, so the worker
    processes of one server can share it. `stuck_after` None: no stuck-task check.
    """
    if _installed:
        return
    _installed.append(True)
    original: Callable[[Any], None] = asyncio.events._set_running_loop
    report = _jsonl_writer(out) if out else _stderr_writer

    def set_running_loop(loop: asyncio.AbstractEventLoop | None) -> None:
        original(loop)
        try:
            _follow(loop, threshold, report, stuck_after)
        except Exception as exc:  # watching is best effort; the server must run
            sys.stderr.write(f"hangdoctor watch: not watching this loop ({exc})\n")

    asyncio.events._set_running_loop = set_running_loop
    asyncio._set_running_loop = set_running_loop  # what uvloop binds


def _follow(
    loop: asyncio.AbstractEventLoop | None,
    threshold: float,
    report: Callable[[Record], object],
    stuck_after: float | None,
) -> None:
    ident = threading.get_ident()
    current = _by_thread.pop(ident, None)
    if current is not None:
        current.stop(timeout=0)  # the loop stopped running; its thread ends on its own
    if loop is None:
        return
    from hangdoctor.runtime.watchdog import LoopWatchdog

    dog = LoopWatchdog(threshold, report, log=False, stuck_after=stuck_after, on_stuck=report)
    _by_thread[ident] = dog
    # Start with the loop's first turn: a server's first step imports the app (seconds of
    # module loading before it listens), which is start-up, not a stall of a serving loop.
    loop.call_soon(_start, dog, loop, threshold)


def _start(dog: LoopWatchdog, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
    if _by_thread.get(threading.get_ident()) is not dog or dog.running:
        return
    dog.start(loop)
    if not dog.running:  # it refused (a free-threaded Python) and said why
        return
    if _announced.get(os.getpid()):
        return
    _announced[os.getpid()] = True
    _mark_ready()
    stuck = "off" if dog.stuck_after is None else f"{dog.stuck_after:g} s"
    sys.stderr.write(
        f"hangdoctor watch: watching the event loop of pid {os.getpid()} "
        f"({threading.current_thread().name}, threshold {threshold:g} s, stuck after {stuck})\n"
    )


def _mark_ready() -> None:
    """Tell `hangdoctor watch` that a watchdog runs (it says so when none ever does)."""
    path = os.environ.get(ENV_READY)
    if not path:
        return
    # OSError: watch stopped waiting and removed its directory; there is nobody to tell
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _stderr_writer(record: Record) -> None:
    lines = [f"hangdoctor watch: pid {record.pid}: {record.summary()}", f"  {record.message}"]
    if record.source:
        lines.append(f"  {record.line} | {record.source}")
    lines.append(f"  fix: hangdoctor explain {record.code}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def _jsonl_writer(path: str) -> Callable[[Record], None]:
    def write(record: Record) -> None:
        text = record.to_json()
        try:
            _append(path, (text + "\n").encode("utf-8"))
        except OSError as exc:
            # a full disk, a removed directory: keep the record, on one line of stderr
            reason = exc.strerror or exc.__class__.__name__
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(
                    f"hangdoctor watch: pid {record.pid}: cannot append to {path} ({reason}); "
                    f"the {record.KIND} record: {text}\n"
                )
                sys.stderr.flush()

    return write


def _append(path: str, data: bytes) -> None:
    """Append `data` with one write, so lines from several workers never mix; all or nothing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written < len(data):
            # the disk filled up mid-record: take the cut line back rather than leave it
            end = os.lseek(fd, 0, os.SEEK_CUR)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end - written)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    finally:
        os.close(fd)
