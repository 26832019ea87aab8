"""Sampling several real processes in rounds with the real py-spy."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hangdoctor.capture.sampler import sample
from hangdoctor.errors import ProcessGoneError


def _unique() -> str:
    return f"hd_fn_{uuid.uuid4().hex[:12]}"


def test_three_samples_of_two_processes(sleeper: Callable[..., Any]) -> None:
    """Each process gets 3 samples in time order, each showing its own sleeping function."""
    first, second = sleeper(_unique()), sleeper(_unique())
    result = sample([first.pid, second.pid], samples=3, interval=0.2)

    assert result.errors == {}
    assert list(result.snapshots) == [first.pid, second.pid]
    for target in (first, second):
        snaps = result.snapshots[target.pid]
        assert len(snaps) == 3
        assert all(s.taken_at is not None for s in snaps)
        times = [s.taken_at or 0.0 for s in snaps]
        assert times == sorted(times)
        assert len(set(times)) == 3
        for snap in snaps:
            assert snap.pid == target.pid
            functions = [f.function for t in snap.threads for f in t.frames]
            assert target.function in functions
    assert result.elapsed_s > 0


def test_a_dead_pid_is_an_error_entry(sleeper: Callable[..., Any], dead_pid: int) -> None:
    """A pid that is gone is recorded in errors; the live one is still sampled every round."""
    live = sleeper()
    result = sample([dead_pid, live.pid], samples=2, interval=0.1, locals=True)
    assert isinstance(result.errors[dead_pid], ProcessGoneError)
    assert dead_pid not in result.snapshots
    assert len(result.snapshots[live.pid]) == 2
    assert any(f.locals for t in result.snapshots[live.pid][0].threads for f in t.frames)


def test_repeated_pids_are_sampled_once_per_round(sleeper: Callable[..., Any]) -> None:
    """Passing a pid twice does not double its samples."""
    target = sleeper()
    result = sample([target.pid, target.pid], samples=2, interval=0.0)
    assert list(result.snapshots) == [target.pid]
    assert len(result.snapshots[target.pid]) == 2


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"samples": 0}, "samples"), ({"interval": -1.0}, "interval"), ({"timeout": 0.0}, "timeout")],
)
def test_invalid_arguments(kwargs: dict[str, Any], word: str) -> None:
    """samples < 1, interval < 0 and timeout <= 0 are refused before anything runs."""
    with pytest.raises(ValueError, match=word):
        sample([1], **kwargs)


def test_each_sample_carries_the_threads_scheduler_counters(sleeper: Callable[..., Any]) -> None:
    """Every thread of every sample has its counters, read after the dump, in time order."""
    target = sleeper()
    snaps = sample([target.pid], samples=2, interval=0.2).snapshots[target.pid]
    for snap in snaps:
        assert snap.threads and all(t.cpu is not None for t in snap.threads)
    first, second = (s.threads[0].cpu for s in snaps)
    assert first is not None and second is not None
    assert second.at_s - first.at_s >= 0.1
    assert second.on_cpu_s >= first.on_cpu_s and second.state == "S"  # asleep in its function
