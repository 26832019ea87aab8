"""Catch in the act: sample the server's stacks while a health request is stuck.

A stall seen a minute later is gone; the moment a health request passes the
stall threshold, the server is still inside whatever blocks it. The capture
(py-spy rounds and the analysis, about a second) runs in a thread of its own so
the probe's event loop keeps timing health requests on schedule; the probe
never waits for it until the run is over.

The server is the process given with --pid, or the local process listening on
the URL's port (its workers included), found from /proc.

The analysis sees only the samples: the same line in every sample reads as one
call stuck from the first sample to the last. The probe knows more. A health
request answered between two of those samples means the loop came back in
between, so what the samples saw was many short blocking calls on that line
(`time.sleep(0.05)` in twenty stream generators), and `with_health` says so.

A request stuck on a healthy loop (past its deadline while health answers) is
caught the same way, once per run, but what it waits on lives in its task, not
on a thread's stack: that capture reads the tasks too, over a short span
(`LiveOptions.stuck_after`), which CPython 3.14+ allows from outside, and any
Python with `inject` (--inject: gdb runs the read inside the server while its
loop is idle). Otherwise an older server has nothing to read from outside, so no
stacks are taken and a note says how to get the task view (the runtime,
`hangdoctor watch`, --inject).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from hangdoctor.capture.procs import ProcessInfo, expand_targets, listening_pids, process_info
from hangdoctor.capture.remote_tasks import supports_remote_tasks, target_version
from hangdoctor.errors import HangdoctorError
from hangdoctor.live import LiveOptions, diagnose_processes
from hangdoctor.model import Diagnosis, Verdict
from hangdoctor.probe.timeline import HealthSample

__all__ = ["STALL", "STUCK", "Capture", "Catcher", "server_pids", "with_health"]

MAX_CAPTURES = 2  # one per stall window, at most this many per run
MAX_STUCK_CAPTURES = 1  # the first moment requests are stuck on a healthy loop
STALL = "stall"  # a health request passed the stall threshold
STUCK = "stuck"  # a --request passed its deadline while health answered
# py-spy pauses the target while it reads a sample; an answer this close to a sample may
# have been sent just before that pause or just after it
_SAMPLE_MARGIN_S = 0.02
_HOW_LONG = re.compile(r"\s*\((?:stuck|busy) for at least [\d.]+ s\)")


@dataclass(frozen=True)
class Capture:
    """One catch-in-the-act attempt: when it started (probe axis) and what it found."""

    t: float
    diagnosis: Diagnosis | None
    error: str | None = None
    elapsed_s: float = 0.0
    samples: tuple[tuple[int, float], ...] = ()  # (pid, probe time) of every snapshot taken
    kind: str = STALL  # what triggered it: STALL or STUCK


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
        inject: bool = False,
    ) -> None:
        self.pids = tuple(pids)
        self._clock = clock
        self._limits = {STALL: limit, STUCK: MAX_STUCK_CAPTURES}
        self._options = options or LiveOptions()
        self._inject = inject  # for STUCK captures only: a stalled loop is never idle
        self._threads: list[tuple[str, threading.Thread]] = []
        self._lock = threading.Lock()
        self.captures: list[Capture] = []

    @property
    def busy(self) -> bool:
        return any(t.is_alive() for _, t in self._threads)

    @property
    def started(self) -> int:
        return len(self._threads)

    def trigger(self, kind: str = STALL, *, stuck_after: float | None = None) -> bool:
        """Start a capture now unless one is running or the limit of its kind is reached.

        A STUCK capture reads the tasks over `stuck_after` seconds, so a wait that did
        not move over that span is named (HD6xx); a cycle needs no waiting.
        """
        if self.busy or sum(k == kind for k, _ in self._threads) >= self._limits[kind]:
            return False
        options = self._options
        if kind == STUCK:
            options = replace(options, stuck_after=stuck_after, inject=self._inject)
        t = self._clock()
        thread = threading.Thread(
            target=self._run, args=(t, kind, options), name="hangdoctor-catch", daemon=True
        )
        self._threads.append((kind, thread))
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

    def _run(self, t: float, kind: str, options: LiveOptions) -> None:
        started = time.monotonic()
        offset = time.time() - self._clock()  # snapshots carry wall-clock times
        try:
            targets = self._targets()
            readable = options.inject or any(supports_remote_tasks(p.pid) for p in targets)
            if kind == STUCK and not readable:
                capture = Capture(t, None, _no_task_view(targets), 0.0, kind=kind)
            else:
                result = diagnose_processes(targets, options)
                samples = tuple(
                    sorted(
                        (snap.pid, snap.taken_at - offset)
                        for snap in result.snapshots
                        if snap.taken_at is not None
                    )
                )
                elapsed = time.monotonic() - started
                capture = Capture(t, result.diagnosis, None, elapsed, samples, kind)
        except HangdoctorError as exc:
            text = f"{exc.message} {exc.remedy}".strip()
            capture = Capture(t, None, text, time.monotonic() - started, kind=kind)
        except Exception as exc:  # a capture must never take the probe down with it
            error = f"{type(exc).__name__}: {exc}"
            capture = Capture(t, None, error, time.monotonic() - started, kind=kind)
        with self._lock:
            self.captures.append(capture)

    def wait(self, timeout: float) -> bool:
        """Wait for running captures up to `timeout` s; False if one is still running."""
        deadline = time.monotonic() + timeout
        for _, thread in self._threads:
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
            if c.error is not None and c.kind == STUCK:
                out.append(
                    f"requests were stuck on a healthy loop at t={c.t:.1f} s, but what they "
                    f"wait on was not read: {c.error}"
                )
            elif c.error is not None:
                out.append(f"catch-in-the-act at t={c.t:.1f} s failed: {c.error}")
            elif c is not shown and c.diagnosis is not None:
                out.append(
                    f"another capture at t={c.t:.1f} s found the server {c.diagnosis.verdict.value}"
                )
        shown_verdict = shown.diagnosis.verdict if shown and shown.diagnosis else None
        if shown is not None and shown_verdict is Verdict.HEALTHY and shown.kind == STUCK:
            out.append(
                f"the tasks read at t={shown.t:.1f} s named no cause for the stuck requests: "
                "they may wait on something outside the server (an upstream call without a "
                "timeout), or on a wait that moved between the samples"
            )
        elif shown is not None and shown_verdict is Verdict.HEALTHY:
            out.append(
                f"the capture at t={shown.t:.1f} s found every event loop answering: "
                "the stall had ended, or its cause is outside the server process"
            )
        if self.busy:
            out.append("a capture was still running when the probe ended; it was not waited for")
        return out


def _no_task_view(targets: Sequence[ProcessInfo]) -> str:
    """Why the tasks of `targets` cannot be read from outside, and how to see them anyway."""
    versions = sorted(
        {f"{v[0]}.{v[1]}" for v in (target_version(p.pid) for p in targets) if v is not None}
    )
    runs = (
        f"the server runs Python {', '.join(versions)}"
        if versions
        else "the server's Python version is unknown"
    )
    return (
        f"{runs}, and the tasks of a running process can be read from outside only on "
        "CPython 3.14+. To see what its requests wait on, run it on 3.14, or under "
        "`hangdoctor watch --stuck-after 10` or with the hangdoctor runtime "
        "(HangdoctorMiddleware with LoopWatchdog(stuck_after=...)), or probe again with "
        "--inject (gdb reads them inside the server: see --help): docs/stuck-requests.md."
    )


def with_health(
    capture: Capture, health: Sequence[HealthSample], events: Sequence[float] = ()
) -> Capture:
    """The capture, its findings corrected by what the server sent during the samples.

    A finding "stuck for at least N s" on a server with a single event loop is
    rewritten when a health request was answered, or a stream event arrived
    (`events`: probe times), between its first and last sample: that loop was
    not stuck in one call, it kept coming back and entering the same line
    again. With several loops (workers) the answer may have come from another
    one, so nothing is concluded.
    """
    diag = capture.diagnosis
    if diag is None or len(diag.loops) != 1 or not capture.samples:
        return capture
    findings = []
    changed = False
    for finding in diag.findings:
        held = finding.blocked_for_s
        times = [t for pid, t in capture.samples if pid == finding.pid]
        if not held or len(times) < 2:
            findings.append(finding)
            continue
        end = max(times)
        start = end - held
        answers = [
            h
            for h in health
            if h.status is not None
            and start + _SAMPLE_MARGIN_S < h.t + h.latency_s < end - _SAMPLE_MARGIN_S
        ]
        sent = [t for t in events if start + _SAMPLE_MARGIN_S < t < end - _SAMPLE_MARGIN_S]
        if not answers and not sent:
            findings.append(finding)
            continue
        seen = sum(1 for t in times if t >= start - _SAMPLE_MARGIN_S)
        message = _HOW_LONG.sub("", finding.message).rstrip(".")
        came = []
        if answers:
            came.append(f"{len(answers)} health answer{'s' if len(answers) != 1 else ''}")
        if sent:
            came.append(f"{len(sent)} stream event{'s' if len(sent) != 1 else ''}")
        message += (
            f" (on this line in {seen} samples over {held:.1f} s, yet the server sent "
            f"{' and '.join(came)} in between: many short blocking calls here, not one call "
            f"stuck {held:.1f} s)."
        )
        findings.append(replace(finding, message=message, blocked_for_s=None))
        changed = True
    if not changed:
        return capture
    loops = tuple(replace(loop, blocked_for_s=None) for loop in diag.loops)
    return replace(capture, diagnosis=replace(diag, findings=tuple(findings), loops=loops))
