"""Take several py-spy samples of several processes: rounds `interval` apart, pids in parallel.

A blocked loop is told from a busy one by the stack staying put over time, so
each process is sampled a few times; all workers of a server are dumped in the
same round so their samples describe the same moments.

Each sample also carries every thread's scheduler counters (on a CPU, waiting
for one), read the moment its dump returns: between two samples they say
whether a thread whose stack did not move wanted the CPU (busy), got little of
it (starved by other load) or wanted none (waiting). Reading them is the
source's job; what they mean is the analysis's.

A CPython 3.14+ target's asyncio tasks are read right after each of its dumps
(capture/remote_tasks.py: one short subprocess), so the tasks and the threads of
a sample describe the same moment. A failure to read them costs the sample
nothing: it keeps its threads, gets no tasks, and the reason is kept in
`SampleResult.task_errors`. With `inject` (diagnose --inject, any Python), the
tasks are read by that function instead, from inside the target
(capture/inject.py), and carry `tasks_source="inject"`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from hangdoctor.capture import schedstat
from hangdoctor.capture.pyspy import dump
from hangdoctor.capture.remote_tasks import read_tasks, supports_remote_tasks
from hangdoctor.errors import CaptureError, HangdoctorError
from hangdoctor.model import Snapshot, Task

__all__ = ["SampleResult", "TaskReader", "sample"]

# reads the tasks of the process a sample was just taken of, within the seconds given
TaskReader = Callable[[Snapshot, float], tuple[Task, ...]]

_SLACK_S = 2.0  # on top of the per-call deadlines: thread start-up, reaping a killed py-spy


@dataclass(frozen=True)
class SampleResult:
    """Samples per pid in time order (only pids sampled at least once), and failures per pid."""

    snapshots: dict[int, list[Snapshot]]
    errors: dict[int, HangdoctorError]
    elapsed_s: float
    # pids whose asyncio tasks could not be read, and why (the first failure; not retried):
    # their samples keep their threads and have no tasks (tasks_source None)
    task_errors: dict[int, HangdoctorError] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sample:
    snapshot: Snapshot
    task_error: HangdoctorError | None = None


def sample(
    pids: Sequence[int],
    *,
    samples: int = 3,
    interval: float = 0.4,
    locals: bool = False,
    native: bool = False,
    nonblocking: bool = False,
    timeout: float = 5.0,
    tasks: bool = True,
    tasks_timeout: float | None = None,
    inject: TaskReader | None = None,
) -> SampleResult:
    """Dump every pid `samples` times, rounds starting `interval` seconds apart.

    A pid that fails (exited, refused...) is recorded in `errors` and not
    sampled again; the others go on. With `tasks`, each sample of a CPython
    3.14+ pid also carries its asyncio tasks (`tasks_source="remote"`), each read
    within `tasks_timeout` (default: `timeout`). The whole call ends by
    `(samples - 1) * interval + samples * timeout` (plus `tasks_timeout` per sample
    when tasks are read) plus a little slack.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    if interval < 0:
        raise ValueError("interval must be >= 0")
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    tasks_timeout = timeout if tasks_timeout is None else tasks_timeout
    if tasks_timeout <= 0:
        raise ValueError("tasks_timeout must be > 0")
    todo = list(dict.fromkeys(pids))  # keep order, drop repeats
    if not tasks:
        with_tasks: set[int] = set()
    elif inject is not None:
        with_tasks = set(todo)
    else:
        with_tasks = {p for p in todo if supports_remote_tasks(p)}
    snapshots: dict[int, list[Snapshot]] = {}
    errors: dict[int, HangdoctorError] = {}
    task_errors: dict[int, HangdoctorError] = {}
    start = time.monotonic()
    per_sample = timeout + (tasks_timeout if with_tasks else 0.0)
    deadline = start + (samples - 1) * interval + samples * per_sample + _SLACK_S
    pool = ThreadPoolExecutor(max_workers=max(1, len(todo)), thread_name_prefix="hd-pyspy")
    try:
        for round_no in range(samples):
            live = [p for p in todo if p not in errors]
            if not live:
                break
            _sleep_until(min(start + round_no * interval, deadline))
            if time.monotonic() >= deadline:
                break
            read_tasks_of = with_tasks - task_errors.keys()  # a pid that failed once is not retried
            futures = {
                pid: pool.submit(
                    _dump_with_cpu,
                    pid,
                    locals=locals,
                    native=native,
                    nonblocking=nonblocking,
                    timeout=timeout,
                    tasks_timeout=tasks_timeout if pid in read_tasks_of else None,
                    inject=inject,
                )
                for pid in live
            }
            wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
            for pid, future in futures.items():
                _collect(pid, future, snapshots, errors, task_errors)
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
        task_errors={p: task_errors[p] for p in todo if p in task_errors and p in snapshots},
    )


def _dump_with_cpu(
    pid: int,
    *,
    locals: bool,
    native: bool,
    nonblocking: bool,
    timeout: float,
    tasks_timeout: float | None,
    inject: TaskReader | None = None,
) -> _Sample:
    """One dump, each thread with its scheduler counters read as soon as it returns.

    A blocking dump pauses the target, and a paused thread neither runs nor
    waits for a CPU, so the counters read after it still belong to the stack it
    shows; from one sample's counters to the next is what the thread did in
    between. With a `tasks_timeout`, the asyncio tasks are read next (tens of ms):
    a task that waits on another for seconds is still where the dump saw it.
    """
    snap = dump(pid, locals=locals, native=native, nonblocking=nonblocking, timeout=timeout)
    counters = schedstat.read_process(pid)
    if counters:
        threads = tuple(
            replace(t, cpu=counters[t.tid]) if t.tid in counters else t for t in snap.threads
        )
        snap = replace(snap, threads=threads)
    if tasks_timeout is None:
        return _Sample(snap)
    try:
        if inject is not None:
            found = inject(snap, tasks_timeout)
        else:
            found = read_tasks(pid, timeout=tasks_timeout)
    except HangdoctorError as exc:
        return _Sample(snap, exc)
    return _Sample(
        replace(snap, tasks=found, tasks_source="remote" if inject is None else "inject")
    )


def _collect(
    pid: int,
    future: Future[_Sample],
    snapshots: dict[int, list[Snapshot]],
    errors: dict[int, HangdoctorError],
    task_errors: dict[int, HangdoctorError],
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
        taken = future.result()
        snapshots.setdefault(pid, []).append(taken.snapshot)
        if taken.task_error is not None:
            task_errors.setdefault(pid, taken.task_error)
    elif isinstance(exc, HangdoctorError):
        errors[pid] = exc
    else:
        raise exc


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
