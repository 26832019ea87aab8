"""Catch in the act: sample the server's stacks while a health request is stuck.

A stall seen a minute later is gone; the moment a health request passes the
stall threshold, the server is still inside whatever blocks it. The capture
(py-spy rounds and the analysis, about a second) runs in a thread of its own so
the probe's event loop keeps timing health requests on schedule; the probe
never waits for it until the run is over.

The server is the process given with --pid, or the local process listening on
the URL's port (its workers included), found from /proc.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hangdoctor.capture.procs import ProcessInfo, expand_targets, listening_pids, process_info
from hangdoctor.errors import HangdoctorError
from hangdoctor.live import LiveOptions, diagnose_processes
from hangdoctor.model import Diagnosis, Verdict

__all__ = ["Capture", "Catcher", "server_pids"]

MAX_CAPTURES = 2  # one per stall window, at most this many per run


@dataclass(frozen=True)
class Capture:
    """One catch-in-the-act attempt: when it started (probe axis) and what it found."""

    t: float
    diagnosis: Diagnosis | None
    error: str | None = None
    elapsed_s: float = 0.0


def _ancestry(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = process_info(pid).ppid
        except HangdoctorError:
            break
    return seen


def server_pids(port: int) -> tuple[list[int], str | None]:
    """The top-most local processes listening on `port` (a master, not its workers).

    Returns (pids, note): the note says why none can be examined. The probe's
    own process is never a target: sampling ourselves would pause the probe.
    """
    found = listening_pids(port)
    mine = _ancestry(os.getpid())
    found = [p for p in found if p not in mine]
    if not found:
        return [], (
            f"catch-in-the-act is off: no process of this machine visible to hangdoctor "
            f"listens on port {port} (another user's, or in a container?); pass --pid PID"
        )
    top = [p for p in found if not (_ancestry(p) - {p}) & set(found)]
    return top, None


class Catcher:
    """Runs at most `limit` captures of `pids` (and their workers), each in its own thread."""

    def __init__(
        self,
        pids: Sequence[int],
        *,
        clock: Callable[[], float],
        limit: int = MAX_CAPTURES,
        options: LiveOptions | None = None,
    ) -> None:
        self.pids = tuple(pids)
        self._clock = clock
        self._limit = limit
        self._options = options or LiveOptions()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.captures: list[Capture] = []

    @property
    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def started(self) -> int:
        return len(self._threads)

    def trigger(self) -> bool:
        """Start a capture now unless one is running or the limit is reached."""
        if self.busy or len(self._threads) >= self._limit:
            return False
        t = self._clock()
        thread = threading.Thread(target=self._run, args=(t,), name="hangdoctor-catch", daemon=True)
        self._threads.append(thread)
        thread.start()
        return True

    def _targets(self) -> list[ProcessInfo]:
        # Read the family again now: a gunicorn master may have replaced a worker.
        seen: set[int] = set()
        out: list[ProcessInfo] = []
        for pid in self.pids:
            for info in expand_targets(pid):
                if info.pid not in seen:
                    seen.add(info.pid)
                    out.append(info)
        return out

    def _run(self, t: float) -> None:
        started = time.monotonic()
        try:
            result = diagnose_processes(self._targets(), self._options)
            capture = Capture(t, result.diagnosis, None, time.monotonic() - started)
        except HangdoctorError as exc:
            text = f"{exc.message} {exc.remedy}".strip()
            capture = Capture(t, None, text, time.monotonic() - started)
        except Exception as exc:  # a capture must never take the probe down with it
            capture = Capture(t, None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        with self._lock:
            self.captures.append(capture)

    def wait(self, timeout: float) -> bool:
        """Wait for running captures up to `timeout` s; False if one is still running."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.busy

    def best(self) -> Capture | None:
        """The capture to show: the first that found a problem, else the first that worked."""
        with self._lock:
            done = sorted(self.captures, key=lambda c: c.t)
        for capture in done:
            if capture.diagnosis is not None and capture.diagnosis.verdict is not Verdict.HEALTHY:
                return capture
        return next((c for c in done if c.diagnosis is not None), None)

    def notes(self) -> list[str]:
        """What the user should know about the captures besides the one shown."""
        with self._lock:
            done = sorted(self.captures, key=lambda c: c.t)
        shown = self.best()
        out = []
        for c in done:
            if c.error is not None:
                out.append(f"catch-in-the-act at t={c.t:.1f} s failed: {c.error}")
            elif c is not shown and c.diagnosis is not None:
                out.append(
                    f"another capture at t={c.t:.1f} s found the server {c.diagnosis.verdict.value}"
                )
        shown_verdict = shown.diagnosis.verdict if shown and shown.diagnosis else None
        if shown is not None and shown_verdict is Verdict.HEALTHY:
            out.append(
                f"the capture at t={shown.t:.1f} s found every event loop answering: "
                "the stall had ended, or its cause is outside the server process"
            )
        if self.busy:
            out.append("a capture was still running when the probe ended; it was not waited for")
        return out
