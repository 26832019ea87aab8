"""Does the server keep what dropped streams leave behind? Threads and open files from /proc.

A fix can trade a hang for a leak: an executor per stream shut down with
`wait=False` no longer blocks the loop, but each dropped stream leaves a worker
thread running until its upstream call returns (80 dropped streams took a
service from 2 to 82 threads, and the latency checks passed). So the probe
counts the server's threads (`/proc/PID/task`) and open file descriptors
(`/proc/PID/fd`), summed over the server and every process under it (a
master's workers), before the streams start, during the run and after it,
with a short settle window at the end for sockets still being closed.

The judgement is about growth *with the number of dropped streams*, not any
rise: a bounded pool fills up once and then stays flat, however many streams
are dropped, while a leak keeps growing as drops continue. A count is judged
to grow with the drops when it rose by at least MIN_RISE and by at least
RISE_PER_DROP per drop counted by the time of its peak, and it was still
rising in the second half of the run's drops (by LATE_PER_DROP per drop
there). A run with fewer than MIN_DROPS drops is not judged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hangdoctor.capture.procs import children

__all__ = [
    "ResourceGrowth",
    "ResourceReport",
    "ResourceSample",
    "ResourceWatch",
    "judge",
]

MIN_DROPS = 10
MIN_RISE = 8
RISE_PER_DROP = 0.5
LATE_PER_DROP = 0.25
LATE_MIN_RISE = 4
SAMPLE_EVERY_S = 0.25
SETTLE_S = 1.5
_EXPAND_EVERY = 8  # samples between two looks for new worker processes


@dataclass(frozen=True)
class ResourceSample:
    """The server's counts at one moment, on the probe's time axis."""

    t: float
    phase: str  # "before", "during" or "after"
    threads: int | None  # None when no process could be read
    fds: int | None  # None when /proc/PID/fd is not readable (another user's process)
    drops: int  # streams the probe had dropped by then


@dataclass(frozen=True)
class ResourceGrowth:
    """A count that grew with the number of dropped streams: the run fails."""

    kind: str  # "threads" or "fds"
    before: int
    peak: int
    after: int  # at the end of the settle window
    drops: int  # streams dropped by the time of the peak
    message: str


@dataclass(frozen=True)
class ResourceReport:
    """What was watched, every sample, and the growth found (empty: none)."""

    pids: tuple[int, ...]
    samples: tuple[ResourceSample, ...]
    growth: tuple[ResourceGrowth, ...]

    def first(self, kind: str) -> int | None:
        values = _values(self.samples, kind, ("before",))
        return values[0][1] if values else None

    def peak(self, kind: str) -> int | None:
        values = [v for _, v in _values(self.samples, kind, ("before", "during", "after"))]
        return max(values) if values else None


_WHAT = {
    "threads": ("threads", "a thread"),
    "fds": ("open files", "an open file"),
}


def _count(path: str) -> int | None:
    try:
        return len(os.listdir(path))
    except OSError:
        return None


class ResourceWatch:
    """Samples the threads and open files of `pids` and everything under them."""

    def __init__(self, pids: Sequence[int], clock: Callable[[], float]) -> None:
        self.roots = tuple(pids)
        self._clock = clock
        self._pids = self._expand()
        self._samples: list[ResourceSample] = []

    def _expand(self) -> tuple[int, ...]:
        found = list(self.roots)
        for root in self.roots:
            found += [p.pid for p in children(root) if p.pid not in found]
        return tuple(found)

    def sample(self, phase: str, drops: int) -> ResourceSample:
        """Read /proc once for every process (a few small directory listings)."""
        if len(self._samples) % _EXPAND_EVERY == _EXPAND_EVERY - 1:
            self._pids = self._expand()  # a worker restarted, or started late
        threads = [_count(f"/proc/{p}/task") for p in self._pids]
        fds = [_count(f"/proc/{p}/fd") for p in self._pids]
        seen = [n for n in threads if n is not None]
        open_files = [n for n in fds if n is not None]
        result = ResourceSample(
            t=self._clock(),
            phase=phase,
            threads=sum(seen) if seen else None,
            fds=sum(open_files) if open_files and len(open_files) == len(seen) else None,
            drops=drops,
        )
        self._samples.append(result)
        return result

    @property
    def pids(self) -> tuple[int, ...]:
        """The processes watched: the roots and the workers under them."""
        return self._pids

    def settled(self) -> bool:
        """Whether the latest counts are back near where they started (the settle can end)."""
        if not self._samples:
            return True
        last = self._samples[-1]
        for kind in ("threads", "fds"):
            start = _values(self._samples, kind, ("before",))
            now = getattr(last, kind)
            if start and now is not None and now > start[0][1] + MIN_RISE // 2:
                return False
        return True

    def report(self) -> ResourceReport:
        samples = tuple(self._samples)
        return ResourceReport(pids=self._pids, samples=samples, growth=judge(samples))


def _values(
    samples: Sequence[ResourceSample], kind: str, phases: tuple[str, ...]
) -> list[tuple[int, int]]:
    """(drops, value) of the samples in `phases` that have a value of `kind`."""
    out: list[tuple[int, int]] = []
    for s in samples:
        value = getattr(s, kind)
        if s.phase in phases and value is not None:
            out.append((s.drops, value))
    return out


def _judge_one(samples: Sequence[ResourceSample], kind: str) -> ResourceGrowth | None:
    before = _values(samples, kind, ("before",))
    run = _values(samples, kind, ("during", "after"))
    if not before or not run:
        return None
    base = min(v for _, v in before)
    total = max(d for d, _ in run)
    if total < MIN_DROPS:
        return None
    peak_drops, peak = max(run, key=lambda dv: (dv[1], -dv[0]))
    rise = peak - base
    if rise < max(MIN_RISE, RISE_PER_DROP * peak_drops):
        return None
    half = total / 2
    first_half = [v for d, v in run if d <= half]
    second_half = [v for d, v in run if d > half]
    if not second_half:
        return None
    at_half = max(first_half, default=base)
    late = max(second_half) - at_half
    if late < max(LATE_MIN_RISE, LATE_PER_DROP * (total - half)):
        return None  # it filled up once and stayed flat: a bounded pool, not a leak
    after = run[-1][1]
    name, one = _WHAT[kind]
    message = (
        f"{name} {base} → {peak} during the probe: each dropped stream leaves {one} behind "
        f"({peak_drops} streams dropped by then; {after} at the end)"
    )
    return ResourceGrowth(kind, base, peak, after, peak_drops, message)


def judge(samples: Sequence[ResourceSample]) -> tuple[ResourceGrowth, ...]:
    """The counts that grew with the number of dropped streams (see the module docstring)."""
    found = (_judge_one(samples, kind) for kind in ("threads", "fds"))
    return tuple(g for g in found if g is not None)
