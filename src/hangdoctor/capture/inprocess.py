"""The in-process source: a `Snapshot` of this process's own threads.

The watchdog and the pytest plugin run inside the process they watch, so they
read stacks with `sys._current_frames()` instead of attaching py-spy: no
ptrace rights, no subprocess, a few hundred microseconds. The frames are the
same model the live capture produces (innermost first, qualified names where
the interpreter has them: `co_qualname` since 3.11), so the analysis never
knows where they came from.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import FrameType

from hangdoctor.model import Frame, Snapshot, Thread

__all__ = ["frames_of", "snapshot_of_threads", "thread_cpu_seconds"]

_MAX_DEPTH = 256  # deeper stacks are recursion: the innermost frames are what matters


def frames_of(top: FrameType | None) -> tuple[Frame, ...]:
    """The stack from `top` outwards, innermost first, as model frames."""
    out: list[Frame] = []
    frame = top
    while frame is not None and len(out) < _MAX_DEPTH:
        code = frame.f_code
        out.append(
            Frame(
                function=getattr(code, "co_qualname", code.co_name),
                file=code.co_filename,
                line=frame.f_lineno or code.co_firstlineno,
            )
        )
        frame = frame.f_back
    return tuple(out)


def snapshot_of_threads(
    *,
    exclude: frozenset[int] = frozenset(),
    active: dict[int, bool] | None = None,
) -> Snapshot:
    """Every Python thread of this process but those in `exclude` (thread idents).

    `active` maps a thread ident to whether it was on the CPU, when the caller
    measured it (the watchdog does, from the thread's CPU clock): the analysis
    tells a busy loop from a blocked one by it.
    """
    started = time.perf_counter()
    taken_at = time.time()
    current = sys._current_frames()
    by_ident = {t.ident: t for t in threading.enumerate()}
    threads: list[Thread] = []
    for ident, top in current.items():
        if ident in exclude:
            continue
        known = by_ident.get(ident)
        threads.append(
            Thread(
                tid=(known.native_id or 0) if known is not None else 0,
                name=known.name if known is not None else None,
                frames=frames_of(top),
                ident=ident,
                active=None if active is None else active.get(ident),
            )
        )
    del current  # frames keep their locals alive: let them go at once
    return Snapshot(
        pid=os.getpid(),
        taken_at=taken_at,
        threads=tuple(threads),
        source="watchdog",
        python_version=".".join(map(str, sys.version_info[:3])),
        command=" ".join(sys.argv)[:500] or None,
        duration_s=round(time.perf_counter() - started, 6),
        cwd=os.getcwd(),
    )


def thread_cpu_seconds(ident: int) -> float | None:
    """CPU time consumed so far by thread `ident` (a `threading.get_ident()`), if knowable.

    A stalled loop thread that burns CPU runs code on the loop (HD501); one that
    does not is waiting on something (a join, a lock, a socket).
    """
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None:
        return None
    try:
        return time.clock_gettime(getter(ident))
    except (OSError, OverflowError, ValueError):  # the thread has ended
        return None
