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
