"""Live diagnosis of running processes: preflight, sample with py-spy, redact, analyse.

The one place `diagnose`, `demo`, the benchmark and (later) `probe`/`doctor`
go through, so a live verdict is reached the same way everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hangdoctor.analysis import analyze
from hangdoctor.capture.preflight import preflight
from hangdoctor.capture.procs import ProcessInfo
from hangdoctor.capture.redact import redact_snapshot
from hangdoctor.capture.sampler import sample
from hangdoctor.errors import HangdoctorError
from hangdoctor.model import Diagnosis, Snapshot

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

    The first target is the one the user named: if it cannot be looked at, that
    is the error. Children that cannot (a non-Python helper, one that exited)
    become notes.
    """
    opts = options or LiveOptions()
    started = time.monotonic()
    notes: list[str] = []
    pids: list[int] = []
    first_error: HangdoctorError | None = None
    for i, target in enumerate(targets):
        try:
            preflight(target.pid, nonblocking=opts.nonblocking)
        except HangdoctorError as exc:
            if i == 0 and len(targets) == 1:
                raise
            if first_error is None:
                first_error = exc
            notes.append(f"pid {target.pid} skipped: {exc.message}")
            continue
        pids.append(target.pid)
    if not pids:
        assert first_error is not None
        raise first_error
    sampling_started = time.monotonic()
    result = sample(
        pids,
        samples=opts.samples,
        interval=opts.interval,
        locals=opts.locals,
        native=opts.native,
        nonblocking=opts.nonblocking,
        timeout=opts.timeout,
    )
    sampling_s = time.monotonic() - sampling_started
    snapshots = tuple(
        redact_snapshot(s, reveal=opts.reveal_secrets)
        for pid in pids
        for s in result.snapshots.get(pid, [])
    )
    for pid, err in result.errors.items():
        notes.append(f"pid {pid} could not be sampled: {err.message}")
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
    diagnosis = analyze(snapshots, anyio_limit=opts.anyio_limit)
    if notes:
        diagnosis = replace(diagnosis, notes=(*diagnosis.notes, *notes))
    return LiveResult(
        diagnosis=diagnosis,
        snapshots=snapshots,
        elapsed_s=time.monotonic() - started,
        sampling_s=sampling_s,
    )
