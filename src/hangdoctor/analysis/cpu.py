"""Did a thread want the CPU, and did it get it? The rule for "CPU-bound" and "starved of CPU".

A thread that computes all the time is, at every moment, either on a CPU or
runnable and waiting for one. On an idle machine that is all on-CPU; with more
runnable threads than cores, or in a container at its CPU limit, a large part
is waiting. So "CPU-bound" is decided from the CPU the thread *wanted*:

    demand = (on-CPU + run-queue wait) / wall time  >=  CPU_BOUND

and never from the share it got (its CPU clock alone), which falls to a half
with three busy processes on two cores and to a few percent under a tight
limit. A thread that waits on a lock, a socket or a sleep is neither running
nor runnable: its demand stays near zero however loaded the machine is.

The converse matters as much: a thread that wanted the CPU but got little of it
(`got < STARVED_GOT`) was *starved of CPU* by other load. Its stack stays put
between samples because it did not run, not because it is stuck; a loop found
like that in asyncio's own code is waiting for a CPU, not busy in user code.
"""

from __future__ import annotations

from collections.abc import Sequence

from hangdoctor.model import CpuUse, Thread, ThreadCpu

__all__ = [
    "CPU_BOUND",
    "MIN_WALL_S",
    "RAN_LITTLE",
    "STARVED_GOT",
    "cpu_bound",
    "demand",
    "describe_starved",
    "got",
    "held_back",
    "ran_little",
    "starved",
    "use_between",
    "use_over",
]

CPU_BOUND = 0.5  # demand (on-CPU + waiting for a CPU) per wall second from which work is CPU-bound
STARVED_GOT = 0.5  # got less than this share of the CPU it wanted: starved by other load
MIN_WALL_S = 0.002  # shorter windows say nothing: the counters move in scheduler ticks
# A starved thread on a CPU for less than this share of the time ran too little for
# where it stands to say where its time goes, even when that is in the user's code.
RAN_LITTLE = 0.05


def use_between(before: ThreadCpu | None, after: ThreadCpu | None) -> CpuUse | None:
    """The thread's CPU use from one read to a later one; None if either is missing."""
    if before is None or after is None:
        return None
    wall = after.at_s - before.at_s
    if wall < MIN_WALL_S:
        return None
    on_cpu = max(0.0, after.on_cpu_s - before.on_cpu_s)
    waiting = max(0.0, after.waiting_s - before.waiting_s)
    if before.state == "R" and after.state == "R" and after.runs == before.runs:
        # runnable at the first read and never on a CPU since: it waited the whole time,
        # a wait the kernel has not added up yet because it is still going on
        waiting = max(waiting, wall - on_cpu)
    return CpuUse(on_cpu_s=on_cpu, waiting_s=waiting, wall_s=wall)


def use_over(threads: Sequence[Thread]) -> CpuUse | None:
    """CPU use of one thread from its first sample with counters to its last one.

    A sample that paused the process (py-spy without --nonblocking) holds the
    thread still for a few milliseconds only: it neither runs nor waits then,
    so the counters read right after a sample belong to the stack it shows.
    """
    read = [t.cpu for t in threads if t.cpu is not None]
    if len(read) < 2:
        return None
    return use_between(read[0], read[-1])


def demand(use: CpuUse) -> float:
    """CPU wanted per wall second: on-CPU plus waiting for a CPU (about 0..1 per thread)."""
    return (use.on_cpu_s + use.waiting_s) / use.wall_s


def got(use: CpuUse) -> float:
    """The share of the CPU it wanted that it got (1.0 when it wanted none)."""
    wanted = use.on_cpu_s + use.waiting_s
    return use.on_cpu_s / wanted if wanted > 0 else 1.0


def cpu_bound(use: CpuUse) -> bool:
    """The thread wanted a CPU for most of the time: it computes (or would, given a CPU)."""
    return demand(use) >= CPU_BOUND


def starved(use: CpuUse) -> bool:
    """It wanted the CPU but spent more of that time waiting for one than running."""
    return cpu_bound(use) and got(use) < STARVED_GOT


def ran_little(use: CpuUse) -> bool:
    """Starved, and on a CPU for only a few percent of the time: the stack is no evidence."""
    return starved(use) and use.on_cpu_s < RAN_LITTLE * use.wall_s


def held_back(use: CpuUse) -> bool:
    """On a CPU a few percent of the time, runnable and waiting for one a good part of it.

    Looser than `ran_little`: a thread of a process throttled at a CPU limit also
    sleeps for the GIL whenever another of its threads was stopped holding it, so
    its own demand can fall under `CPU_BOUND` while the CPU is still what it lacks.
    A thread blocked in a call does not wait for a CPU at all.
    """
    return use.on_cpu_s < RAN_LITTLE * use.wall_s and use.waiting_s >= 0.25 * use.wall_s


def describe_starved(use: CpuUse) -> str:
    """The evidence, as a report words it: "waited for a CPU 0.78 s of 0.80 s (on a CPU 0.02 s)"."""
    return (
        f"waited for a CPU {use.waiting_s:.2f} s of {use.wall_s:.2f} s "
        f"(on a CPU {use.on_cpu_s:.2f} s)"
    )
