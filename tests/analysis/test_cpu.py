"""The CPU-bound / starved-of-CPU rule on scheduler counters, and the model carrying them."""

from __future__ import annotations

import pytest

from hangdoctor.analysis import analyze, cpu
from hangdoctor.model import (
    CpuUse,
    Frame,
    Snapshot,
    Thread,
    ThreadCpu,
    Verdict,
    snapshot_from_dict,
    to_dict,
)


def _read(on: float, waiting: float, at: float, runs: int = 1, state: str = "R") -> ThreadCpu:
    return ThreadCpu(on_cpu_s=on, waiting_s=waiting, at_s=at, runs=runs, state=state)


def test_computing_on_a_crowded_cpu_is_cpu_bound() -> None:
    """A quarter of a CPU got, the rest waited for: demand 1.0, CPU-bound and starved."""
    use = cpu.use_between(_read(0, 0, 0), _read(0.25, 0.75, 1.0, runs=40))
    assert use == CpuUse(on_cpu_s=0.25, waiting_s=0.75, wall_s=1.0)
    assert cpu.cpu_bound(use) and cpu.starved(use) and not cpu.ran_little(use)


def test_a_sleeping_thread_is_neither_bound_nor_starved() -> None:
    """Asleep (state S), it neither runs nor waits: demand near 0 whatever the load."""
    use = cpu.use_between(_read(1, 2, 0, state="S"), _read(1.001, 2, 1.0, runs=2, state="S"))
    assert use is not None and not cpu.cpu_bound(use) and not cpu.starved(use)


def test_a_wait_still_going_on_counts_as_waiting() -> None:
    """Runnable at both reads and never run between: the kernel has not added the wait yet."""
    use = cpu.use_between(_read(1, 2, 10.0, runs=5), _read(1, 2, 10.8, runs=5))
    assert use is not None and use.waiting_s == pytest.approx(0.8)
    assert cpu.ran_little(use) and cpu.held_back(use)
    assert "waited for a CPU 0.80 s of 0.80 s (on a CPU 0.00 s)" in cpu.describe_starved(use)


def test_windows_too_short_or_unread_say_nothing() -> None:
    """No counters, or two reads a millisecond apart: no judgement (the caller falls back)."""
    assert cpu.use_between(None, _read(0, 0, 1)) is None
    assert cpu.use_between(_read(0, 0, 1.0), _read(0.001, 0, 1.001)) is None
    assert cpu.use_over([Thread(tid=1, name=None, frames=())]) is None


def test_use_over_spans_the_first_to_the_last_read() -> None:
    """Over samples of one thread: from its first counters to its last ones."""
    threads = [
        Thread(tid=7, name="MainThread", frames=(), cpu=_read(0.0, 0.0, 0.0)),
        Thread(tid=7, name="MainThread", frames=()),
        Thread(tid=7, name="MainThread", frames=(), cpu=_read(0.5, 0.3, 1.0, runs=9)),
    ]
    assert cpu.use_over(threads) == CpuUse(on_cpu_s=0.5, waiting_s=0.3, wall_s=1.0)


def test_counters_survive_a_saved_snapshot() -> None:
    """`diagnose --save` keeps each thread's counters: a saved capture is judged the same."""
    snap = Snapshot(
        pid=1,
        taken_at=1.0,
        threads=(Thread(tid=2, name="MainThread", frames=(), cpu=_read(1, 2, 3, runs=4)),),
    )
    assert snapshot_from_dict(to_dict(snap)) == snap


_LOOP = (
    Frame("Handle._run", "/usr/lib/python3.11/asyncio/events.py", 80),
    Frame("BaseEventLoop._run_once", "/usr/lib/python3.11/asyncio/base_events.py", 1922),
    Frame("BaseEventLoop.run_forever", "/usr/lib/python3.11/asyncio/base_events.py", 607),
)
_IN_ASYNCIO = Frame(
    "_SelectorSocketTransport.write", "/usr/lib/python3.11/asyncio/selector_events.py", 1070
)
_IN_USER = Frame("score", "/srv/app/score.py", 12)


def _samples(top: Frame, reads: list[ThreadCpu]) -> list[Snapshot]:
    """The same loop stack in every sample, flagged active by py-spy (state R), with counters."""
    return [
        Snapshot(
            pid=5,
            taken_at=r.at_s,
            threads=(Thread(tid=5, name="MainThread", frames=(top, *_LOOP), active=True, cpu=r),),
        )
        for r in reads
    ]


def test_a_starved_loop_in_asyncio_code_is_not_busy() -> None:
    """The stack stayed put in asyncio's own code because the loop waited for a CPU: no cause.

    py-spy flags a runnable thread active; that alone used to make this busy (HD501).
    """
    reads = [_read(1.0, 5.0, 100.0, runs=7), _read(1.001, 5.0, 100.4, runs=8)]
    reads[1] = ThreadCpu(1.001, 5.39, 100.4, runs=8, state="R")
    diagnosis = analyze(_samples(_IN_ASYNCIO, reads))
    assert diagnosis.verdict is Verdict.HEALTHY and diagnosis.findings == ()
    assert "starved of CPU" in " ".join(diagnosis.notes)
    assert "waited for a CPU 0.39 s of 0.40 s" in " ".join(diagnosis.notes)


def test_cpu_work_in_user_code_that_waits_for_a_cpu_is_still_busy() -> None:
    """A third of a CPU got, the rest waited for, in the user's function: HD501, waiting said."""
    reads = [_read(1.0, 5.0, 100.0, runs=7), _read(1.13, 5.26, 100.4, runs=30)]
    diagnosis = analyze(_samples(_IN_USER, reads))
    assert diagnosis.verdict is Verdict.BUSY
    (finding,) = diagnosis.findings
    assert (finding.code, finding.function) == ("HD501", "score")
    assert "waited for a CPU 0.26 s of 0.40 s" in finding.message
