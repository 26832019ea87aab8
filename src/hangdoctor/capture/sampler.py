"""Take several py-spy samples of several processes: rounds `interval` apart, pids in parallel.

A blocked loop is told from a busy one by the stack staying put over time, so
each process is sampled a few times; all workers of a server are dumped in the
same round so their samples describe the same moments.

Each sample also carries every thread's scheduler counters (on a CPU, waiting
for one), read the moment its dump returns: between two samples they say
whether a thread whose stack did not move wanted the CPU (busy), got little of
it (starved by other load) or wanted none (waiting). Reading them is the
source's job; what they mean is the analysis's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from hangdoctor.capture import schedstat
from hangdoctor.capture.pyspy import dump
from hangdoctor.errors import CaptureError, HangdoctorError
from hangdoctor.model import Snapshot

__all__ = ["SampleResult", "sample"]

_SLACK_S = 2.0  # on top of the per-call deadlines: thread start-up, reaping a killed py-spy


@dataclass(frozen=True)
class SampleResult:
    """Samples per pid in time order (only pids sampled at least once), and failures per pid."""

    snapshots: dict[int, list[Snapshot]]
    errors: dict[int, HangdoctorError]
    elapsed_s: float


def sample(
    pids: Sequence[int],
    *,
    samples: int = 3,
    interval: float = 0.4,
    locals: bool = False,
    native: bool = False,
    nonblocking: bool = False,
    timeout: float = 5.0,
) -> SampleResult:
    """Dump every pid `samples` times, rounds starting `interval` seconds apart.

    A pid that fails (exited, refused...) is recorded in `errors` and not
    sampled again; the others go on. The whole call ends by
    `(samples - 1) * interval + samples * timeout` plus a little slack.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    if interval < 0:
        raise ValueError("interval must be >= 0")
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    todo = list(dict.fromkeys(pids))  # keep order, drop repeats
    snapshots: dict[int, list[Snapshot]] = {}
    errors: dict[int, HangdoctorError] = {}
    start = time.monotonic()
    deadline = start + (samples - 1) * interval + samples * timeout + _SLACK_S
    pool = ThreadPoolExecutor(max_workers=max(1, len(todo)), thread_name_prefix="hd-pyspy")
    try:
        for round_no in range(samples):
            live = [p for p in todo if p not in errors]
            if not live:
                break
            _sleep_until(min(start + round_no * interval, deadline))
            if time.monotonic() >= deadline:
                break
            futures = {
                pid: pool.submit(
                    _dump_with_cpu,
                    pid,
                    locals=locals,
                    native=native,
                    nonblocking=nonblocking,
                    timeout=timeout,
                )
                for pid in live
            }
            wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
            for pid, future in futures.items():
                _collect(pid, future, snapshots, errors)
    finally:
        # Every dump has its own deadline, so nothing here can outlive it for long;
        # do not wait for a straggler past ours.
        pool.shutdown(wait=False, cancel_futures=True)
    for pid in todo:
        if pid not in snapshots and pid not in errors:
            errors[pid] = CaptureError(
                f"Process {pid} could not be sampled before the overall deadline.",
                "Retry with fewer --samples or a shorter --interval.",
            )
    return SampleResult(
        snapshots={p: snapshots[p] for p in todo if p in snapshots},
        errors={p: errors[p] for p in todo if p in errors},
        elapsed_s=time.monotonic() - start,
    )


def _dump_with_cpu(
    pid: int, *, locals: bool, native: bool, nonblocking: bool, timeout: float
) -> Snapshot:
    """One dump, each thread with its scheduler counters read as soon as it returns.

    A blocking dump pauses the target, and a paused thread neither runs nor
    waits for a CPU, so the counters read after it still belong to the stack it
    shows; from one sample's counters to the next is what the thread did in
    between.
    """
    snap = dump(pid, locals=locals, native=native, nonblocking=nonblocking, timeout=timeout)
    counters = schedstat.read_process(pid)
    if not counters:
        return snap
    threads = tuple(
        replace(t, cpu=counters[t.tid]) if t.tid in counters else t for t in snap.threads
    )
    return replace(snap, threads=threads)


def _collect(
    pid: int,
    future: Future[Snapshot],
    snapshots: dict[int, list[Snapshot]],
    errors: dict[int, HangdoctorError],
) -> None:
    if not future.done():
        future.cancel()
        errors[pid] = CaptureError(
            f"py-spy was still reading process {pid} at the overall deadline.",
            "Retry; if it keeps happening, use --nonblocking so py-spy does not pause it.",
        )
        return
    exc = future.exception()
    if exc is None:
        snapshots.setdefault(pid, []).append(future.result())
    elif isinstance(exc, HangdoctorError):
        errors[pid] = exc
    else:
        raise exc


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
