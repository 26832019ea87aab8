"""Prometheus metrics for the watchdog and the middleware (the `prometheus` extra).

    hangdoctor_loop_lag_seconds                   histogram: how late each heartbeat ran
    hangdoctor_stalls_total{code}                 counter: stalls by catalog code
    hangdoctor_stuck_total{code}                  counter: stuck-request episodes (HD6xx)
    hangdoctor_anyio_worker_threads_busy          gauge: AnyIO worker threads in use
    hangdoctor_anyio_worker_threads_limit         gauge: the AnyIO thread limit (40 by default)
    hangdoctor_open_streams                       gauge: event-stream responses open

Busy threads reaching the limit is HD401 (thread-pool starvation): sync routes,
a sync /health included, queue for a thread although the loop is free.

Multi-worker servers (gunicorn): use prometheus_client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`); the gauges declare how workers add up (busy
threads and open streams are summed over live workers, the limit is the
largest), see docs/runtime.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from hangdoctor.runtime.stall import StallRecord
from hangdoctor.runtime.stuck import StuckRecord
from hangdoctor.runtime.watchdog import LoopWatchdog

__all__ = ["LAG_BUCKETS", "HangdoctorMetrics"]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_THREADS_EVERY = 1.0  # seconds between reads of the AnyIO limiter


class HangdoctorMetrics:
    """The metrics of one process; pass it to `watch()` and to the middleware as `observer`."""

    def __init__(
        self, registry: CollectorRegistry | None = REGISTRY, *, namespace: str = "hangdoctor"
    ) -> None:
        ns = namespace
        self.loop_lag = Histogram(
            f"{ns}_loop_lag_seconds",
            "How late the event loop ran the watchdog's heartbeat (loop lag).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.stalls = Counter(
            f"{ns}_stalls",
            "Event-loop stalls longer than the watchdog threshold, by catalog code.",
            ["code"],
            registry=registry,
        )
        self.stuck = Counter(
            f"{ns}_stuck",
            "Episodes of requests or tasks stuck on a healthy loop (HD6xx), by catalog code; "
            "each counted once, when it is first reported.",
            ["code"],
            registry=registry,
        )
        self.threads_busy = Gauge(
            f"{ns}_anyio_worker_threads_busy",
            "AnyIO worker threads in use (sync routes, run_in_threadpool).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.threads_limit = Gauge(
            f"{ns}_anyio_worker_threads_limit",
            "The AnyIO worker thread limit; busy == limit means sync routes queue (HD401).",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.open_streams = Gauge(
            f"{ns}_open_streams",
            "Event-stream (text/event-stream) responses being sent.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, watchdog: LoopWatchdog) -> None:
        """Feed the lag histogram and the stall and stuck counters from `watchdog`.

        Called from inside the watched loop, it also samples the AnyIO thread
        limiter there once a second (the limiter belongs to the loop), for as
        long as the watchdog runs.
        """
        watchdog.add_lag_listener(self.loop_lag.observe)
        watchdog.add_stall_listener(self._count_stall)
        watchdog.add_stuck_listener(self._count_stuck)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._sample_threads(watchdog))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count_stall(self, record: StallRecord) -> None:
        self.stalls.labels(record.code).inc()

    def _count_stuck(self, record: StuckRecord) -> None:
        self.stuck.labels(record.code).inc()

    async def _sample_threads(self, watchdog: LoopWatchdog) -> None:
        limiter = _limiter()
        if limiter is None:
            return
        while True:
            await asyncio.sleep(_THREADS_EVERY)
            if not watchdog.running:
                return
            self.threads_busy.set(limiter.borrowed_tokens)
            self.threads_limit.set(limiter.total_tokens)

    # StreamObserver: the middleware calls these
    def stream_opened(self) -> None:
        self.open_streams.inc()

    def stream_closed(self) -> None:
        self.open_streams.dec()


def _limiter() -> Any:
    """AnyIO's default thread limiter of the running loop, or None without AnyIO."""
    try:
        from anyio import to_thread
    except ImportError:
        return None
    try:
        return to_thread.current_default_thread_limiter()
    except Exception:  # not inside an AnyIO-compatible task: nothing to sample
        return None
