"""Read a thread's scheduler counters: time on a CPU and time waiting for one.

`/proc/PID/task/TID/schedstat` holds three numbers: nanoseconds run on a CPU,
nanoseconds spent runnable on a run queue waiting for a CPU, and the number of
times it ran. The kernel adds a wait to the second when the wait ends, so the
thread's state (`/proc/PID/task/TID/stat`) is read with them: a thread that was
runnable at one read and has not run since has been waiting all along.

The waiting time is what a thread's own CPU clock cannot show: on a machine
with more runnable threads than cores (or in a container at its CPU limit,
where throttled time counts as waiting) a thread that computes all the time
gets only its share of a CPU, and its CPU clock alone makes it look half idle.
The analysis reads "wanted the CPU" as on-CPU plus waiting.

A full read is two small files (about 10 microseconds). `SchedCounter` keeps
one thread's file open instead: a read is then one `pread`, about as cheap as
reading the thread's CPU clock (0.6 against 0.5 microseconds here), which is
what the watchdog does on each of its wake-ups. Standard library only: the watchdog runs inside
production services.
"""

from __future__ import annotations

import os
import time

from hangdoctor.model import ThreadCpu

__all__ = ["SchedCounter", "read_process", "read_thread"]

_NS = 1e-9


def read_thread(pid: int, tid: int) -> ThreadCpu | None:
    """The counters of thread `tid` of process `pid` now; None when they cannot be read.

    A kernel without scheduler statistics, a thread that has ended and a process
    hidden from this one (another user, without ptrace rights) all give None: the
    caller then decides from what it has, as before.
    """
    task = f"/proc/{pid}/task/{tid}"
    raw = _read(f"{task}/schedstat", 128)
    if raw is None:
        return None
    at = time.monotonic()
    stat = _read(f"{task}/stat", 1024)
    return _parse(raw, at, _state(stat) if stat is not None else None)


class SchedCounter:
    """One thread's `schedstat`, kept open so that each read is a single `pread`.

    The state letter is not read (that is a second file): `state` is None.
    """

    def __init__(self, pid: int, tid: int) -> None:
        self._fd: int | None = os.open(f"/proc/{pid}/task/{tid}/schedstat", os.O_RDONLY)

    @classmethod
    def open(cls, pid: int, tid: int) -> SchedCounter | None:
        """The counter, or None where the file cannot be opened (no /proc, no such thread)."""
        try:
            return cls(pid, tid)
        except OSError:
            return None

    def read(self) -> ThreadCpu | None:
        fd = self._fd
        if fd is None:
            return None
        try:
            raw = os.pread(fd, 128, 0)
        except OSError:  # the thread has ended
            return None
        return _parse(raw, time.monotonic(), None)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def read_process(pid: int) -> dict[int, ThreadCpu]:
    """The counters of every thread of `pid` now, by thread id; those unreadable left out."""
    try:
        tids = [int(name) for name in os.listdir(f"/proc/{pid}/task") if name.isdigit()]
    except OSError:
        return {}
    out: dict[int, ThreadCpu] = {}
    for tid in tids:
        cpu = read_thread(pid, tid)
        if cpu is not None:
            out[tid] = cpu
    return out


def _read(path: str, size: int) -> bytes | None:
    # only ever a /proc file, which the kernel answers from memory: no disk wait on the loop
    try:
        fd = os.open(path, os.O_RDONLY)  # hangdoctor: ignore[HD205]
    except OSError:
        return None
    try:
        return os.read(fd, size)  # hangdoctor: ignore[HD205]
    except OSError:
        return None
    finally:
        os.close(fd)


def _state(stat: bytes) -> str | None:
    """The state letter of a `stat` line; the command before it may hold spaces and parens."""
    _, _, rest = stat.rpartition(b")")
    fields = rest.split()
    return fields[0].decode("ascii", "replace") if fields else None


def _parse(raw: bytes, at: float, state: str | None) -> ThreadCpu | None:
    fields = raw.split()
    if len(fields) < 3:
        return None
    try:
        on_cpu, waiting, runs = int(fields[0]), int(fields[1]), int(fields[2])
    except ValueError:
        return None
    return ThreadCpu(
        on_cpu_s=on_cpu * _NS, waiting_s=waiting * _NS, at_s=at, runs=runs, state=state
    )
