"""Live diagnosis of running processes: preflight, sample with py-spy, redact, analyse.

The one place `diagnose`, `demo`, the benchmark and (later) `probe`/`doctor`
go through, so a live verdict is reached the same way everywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hangdoctor.analysis import analyze
from hangdoctor.analysis.loops import loop_view
from hangdoctor.capture.preflight import preflight
from hangdoctor.capture.procs import ProcessInfo
from hangdoctor.capture.redact import redact_snapshot
from hangdoctor.capture.sampler import sample
from hangdoctor.errors import HangdoctorError, NoEventLoopError, ProcessGoneError
from hangdoctor.model import Diagnosis, Snapshot, Task, Verdict

__all__ = ["LiveOptions", "LiveResult", "diagnose_processes"]


@dataclass(frozen=True)
class LiveOptions:
    """How to sample: the defaults give a verdict in about a second."""

    samples: int = 3
    interval: float = 0.4
    locals: bool = True  # object addresses link a joined thread to its worker
    native: bool = False
    nonblocking: bool = False
    timeout: float = 5.0  # per py-spy call
    reveal_secrets: bool = False
    anyio_limit: int = 40
    # CPython 3.14+ targets: read the tasks over this many seconds and call a wait that did
    # not move over that span stuck (HD6xx); None: only a cycle or a shutdown wait, which
    # need no waiting to be certain
    stuck_after: float | None = None
    # read the tasks from inside the target with gdb (capture/inject.py), on any Python
    inject: bool = False

    def sampling(self) -> tuple[int, float]:
        """(samples, interval): spread over `stuck_after` when it is set."""
        if self.stuck_after is None:
            return self.samples, self.interval
        samples = max(self.samples, 3)
        return samples, max(self.interval, self.stuck_after / (samples - 1))


@dataclass(frozen=True)
class LiveResult:
    diagnosis: Diagnosis
    snapshots: tuple[Snapshot, ...]
    elapsed_s: float  # preflight + sampling + analysis
    sampling_s: float  # the part spent in py-spy rounds


def diagnose_processes(
    targets: Sequence[ProcessInfo], options: LiveOptions | None = None
) -> LiveResult:
    """Sample every target and analyse them together.

    A process that could not be looked at (refused, stopped, exited mid-way)
    is a note beside a problem found in another, but never part of an
    all-clear: a healthy verdict with one of them unread raises its error
    instead. Python processes that all run no event loop raise
    NoEventLoopError: there is nothing to call healthy.
    """
    opts = options or LiveOptions()
    started = time.monotonic()
    notes: list[str] = []
    pids: list[int] = []
    unread: dict[int, HangdoctorError] = {}
    for target in targets:
        try:
            preflight(target.pid, nonblocking=opts.nonblocking)
        except HangdoctorError as exc:
            unread[target.pid] = exc
            notes.append(f"pid {target.pid} skipped: {exc.message}")
            continue
        pids.append(target.pid)
    if not pids:
        raise next(iter(unread.values()))
    if opts.inject:
        from hangdoctor.capture.inject import check_can_inject

        for pid in pids:
            check_can_inject(pid)  # before sampling: a missing gdb is said at once
    sampling_started = time.monotonic()
    samples, interval = opts.sampling()
    result = sample(
        pids,
        samples=samples,
        interval=interval,
        locals=opts.locals,
        native=opts.native,
        nonblocking=opts.nonblocking,
        timeout=opts.timeout,
        inject=_inject_into_loop if opts.inject else None,
    )
    sampling_s = time.monotonic() - sampling_started
    snapshots = tuple(
        redact_snapshot(s, reveal=opts.reveal_secrets)
        for pid in pids
        for s in result.snapshots.get(pid, [])
    )
    for pid, err in result.errors.items():
        taken = len(result.snapshots.get(pid, []))
        if taken and isinstance(err, ProcessGoneError):
            err = ProcessGoneError(
                f"Process {pid} exited after {taken} of {samples} samples, while "
                "hangdoctor was reading it.",
                "Its first samples alone are no verdict: find the running server again "
                "(`hangdoctor diagnose` with no arguments lists them) and retry.",
            )
        unread[pid] = err
        notes.append(f"pid {pid} could not be sampled: {err.message}")
    for pid, err in result.task_errors.items():
        notes.append(f"tasks of pid {pid} could not be read: {err.message}")
    if not snapshots:
        raise next(iter(result.errors.values()))
    if opts.native:
        fell_back = sorted({s.pid for s in snapshots if s.source != "py-spy-native"})
        if fell_back:
            notes.append(
                "py-spy could not line up native frames with Python frames for pid "
                + ", ".join(map(str, fell_back))
                + " (a limitation of its unwinder on this stack): Python frames only."
            )
    # the reads of a span of S seconds are a few milliseconds apart from S: allow for it
    stuck_after = math.inf if opts.stuck_after is None else opts.stuck_after * 0.9
    diagnosis = analyze(snapshots, anyio_limit=opts.anyio_limit, stuck_after=stuck_after)
    if diagnosis.verdict is Verdict.HEALTHY and not opts.inject:
        notes.extend(_no_task_view(snapshots))
    if diagnosis.verdict is Verdict.HEALTHY and unread:
        raise _not_all_clear(unread, [p for p in pids if p not in unread])
    if not diagnosis.loops:
        raise _no_event_loop(snapshots)
    if notes:
        diagnosis = replace(diagnosis, notes=(*diagnosis.notes, *notes))
    return LiveResult(
        diagnosis=diagnosis,
        snapshots=snapshots,
        elapsed_s=time.monotonic() - started,
        sampling_s=sampling_s,
    )


def _no_task_view(snapshots: Sequence[Snapshot]) -> list[str]:
    """Say what a healthy verdict could not see: the tasks of targets older than 3.14."""
    unseen: dict[int, str | None] = {}
    for snap in snapshots:
        if snap.tasks_source is None and any(loop_view(t) for t in snap.threads):
            unseen[snap.pid] = snap.python_version
    if not unseen:
        return []
    which = ", ".join(
        f"pid {pid}" + (f" (Python {ver})" if ver else "") for pid, ver in unseen.items()
    )
    return [
        f"Requests waiting on a healthy loop were not looked at in {which}: tasks can be "
        "read from outside only on CPython 3.14+. For requests that hang while /health "
        "answers, run the service under `hangdoctor watch` or with the middleware, or "
        "diagnose again with --inject (gdb reads them inside the target: see --help) "
        "(docs/stuck-requests.md)."
    ]


def _inject_into_loop(snap: Snapshot, timeout: float) -> tuple[Task, ...]:
    """The tasks of `snap`'s process, read by code injected into its loop thread."""
    from hangdoctor.capture.inject import inject_tasks

    tids = [t.tid for t in snap.threads if loop_view(t) is not None]
    return inject_tasks(snap.pid, tids, timeout=timeout) if tids else ()


def _not_all_clear(unread: dict[int, HangdoctorError], seen: list[int]) -> HangdoctorError:
    """The first unread process's error, saying the others' clean stacks are no verdict."""
    pid, first = next(iter(unread.items()))
    others = [p for p in unread if p != pid]
    message = first.message
    if others:
        message += f" ({len(others)} more could not be looked at: pid {_pids(others)}.)"
    if seen:
        message += (
            f" The stacks of pid {_pids(seen)} look healthy, but that is no all-clear while "
            "a process of the service could not be looked at."
        )
    return type(first)(message, first.remedy)


def _no_event_loop(snapshots: Sequence[Snapshot]) -> NoEventLoopError:
    commands = {s.pid: s.command for s in snapshots}
    named = "; ".join(
        f"pid {pid}" + (f" (`{_short(cmd)}`)" if cmd else "") for pid, cmd in commands.items()
    )
    runs = "it runs" if len(commands) == 1 else "they run"
    return NoEventLoopError(
        f"No event loop in {named}: {runs} Python but no asyncio or uvloop event loop, "
        "so there is no loop to call blocked or healthy.",
        "Point hangdoctor at the server process itself: `hangdoctor diagnose` with no "
        "arguments finds a uvicorn, gunicorn, hypercorn or granian server, or pick one with "
        "--match TEXT (a word of its command line); a supervisor or launcher runs no loop.",
    )


def _pids(pids: Sequence[int]) -> str:
    return ", ".join(map(str, pids))


def _short(command: str, limit: int = 60) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."
