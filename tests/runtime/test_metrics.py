"""HangdoctorMetrics fed by a real watchdog on a real loop, read back from its registry."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry

from hangdoctor.runtime import LoopWatchdog
from hangdoctor.runtime.metrics import HangdoctorMetrics


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_lag_stalls_threads_and_streams_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = HangdoctorMetrics(registry)

    async def main() -> None:
        async with LoopWatchdog(0.1, log=False) as dog:
            metrics.watch(dog)
            await asyncio.sleep(0.2)
            time.sleep(0.4)  # one HD201 stall
            # the AnyIO limiter is read once a second, on the loop
            await asyncio.sleep(1.3)
            metrics.stream_opened()
            metrics.stream_opened()
            metrics.stream_closed()

    asyncio.run(main())
    beats = _value(registry, "hangdoctor_loop_lag_seconds_count")
    assert beats >= 20  # a heartbeat every 10 ms for about 1.5 s
    assert _value(registry, "hangdoctor_loop_lag_seconds_bucket", le="0.01") < beats
    assert _value(registry, "hangdoctor_stalls_total", code="HD201") == 1
    assert _value(registry, "hangdoctor_anyio_worker_threads_limit") == 40
    assert _value(registry, "hangdoctor_anyio_worker_threads_busy") == 0
    assert _value(registry, "hangdoctor_open_streams") == 1


def test_a_stuck_episode_is_counted_once_by_code() -> None:
    """GIVEN two tasks deadlocked on two locks WHEN the watchdog looks at them over several
    checks THEN hangdoctor_stuck_total{code="HD601"} is 1: an episode, not a check."""
    registry = CollectorRegistry()
    metrics = HangdoctorMetrics(registry)
    first, second = asyncio.Lock(), asyncio.Lock()

    async def take(a: asyncio.Lock, b: asyncio.Lock) -> None:
        async with a:
            await asyncio.sleep(0.05)
            async with b:
                pass

    async def main() -> None:
        async with LoopWatchdog(0.25, log=False, stuck_after=0.3) as dog:
            metrics.watch(dog)
            tasks = [
                asyncio.create_task(take(first, second)),
                asyncio.create_task(take(second, first)),
            ]
            deadline = time.monotonic() + 10
            while not dog.stuck_records and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # more checks and looks: the same episode
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert _value(registry, "hangdoctor_stuck_total", code="HD601") == 1
