"""What a probe run records: every health request, every stream, the verdict.

The probe engine writes these, the terminal, JSON and HTML renderers read
them. Times are seconds since the probe started (`t`), from one monotonic
clock, so marks from health checks, streams and captures share one axis.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hangdoctor.model import Diagnosis
from hangdoctor.probe.resources import ResourceReport

__all__ = [
    "HealthSample",
    "ProbeConfig",
    "ProbeResult",
    "ProbeSummary",
    "ProbeVerdict",
    "StallWindow",
    "StreamRecord",
    "percentile",
    "summarize",
]


class ProbeVerdict(str, enum.Enum):
    PASS = "pass"  # no health request timed out and p99 under the threshold
    FAIL = "fail"


@dataclass(frozen=True)
class ProbeConfig:
    """What was asked for: the run is bounded by `duration_s` and the client counts."""

    url: str  # base URL, e.g. http://127.0.0.1:8000
    streams: tuple[str, ...]  # stream paths
    health: str  # health path
    clients: int = 20
    duration_s: float = 20.0
    abort_min_s: float = 0.2
    abort_max_s: float = 3.0
    health_interval_s: float = 0.1
    health_timeout_s: float = 2.0
    p99_threshold_s: float = 0.5
    stall_threshold_s: float = 0.5  # a health request this late triggers a capture
    method: str = "GET"
    seed: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # sent on streams and health requests
    body: str | None = None  # request body of the streams (with --method POST)
    insecure: bool = False  # https: do not verify the server's certificate


@dataclass(frozen=True)
class HealthSample:
    """One health request: when it started, how long it took, what came back."""

    t: float  # start, seconds since the probe started
    latency_s: float  # until the full response, or until the deadline on timeout
    status: int | None  # HTTP status; None on timeout or error
    timed_out: bool = False
    error: str | None = None


@dataclass(frozen=True)
class StreamRecord:
    """One stream connection from open to abort (or failure)."""

    client: int  # which of the N clients
    path: str
    t_open: float
    t_first_event: float | None = None
    t_end: float | None = None
    events: int = 0
    status: int | None = None
    aborted: bool = False  # the client dropped it on purpose
    error: str | None = None  # why it failed, if it did


@dataclass(frozen=True)
class StallWindow:
    """A span when health requests were late or timed out."""

    t_start: float
    t_end: float
    worst_latency_s: float
    timeouts: int


@dataclass(frozen=True)
class ProbeSummary:
    requests: int
    ok: int
    timeouts: int
    errors: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None
    longest_stall_s: float
    streams_opened: int
    streams_aborted: int
    streams_failed: int
    events: int


@dataclass(frozen=True)
class ProbeResult:
    config: ProbeConfig
    started_at: float  # wall clock (epoch seconds) at t = 0
    elapsed_s: float
    health: tuple[HealthSample, ...]
    streams: tuple[StreamRecord, ...]
    stalls: tuple[StallWindow, ...]
    summary: ProbeSummary
    verdict: ProbeVerdict
    diagnosis: Diagnosis | None = None  # captured at the moment of the stall
    diagnosis_t: float | None = None  # when that capture started, on the probe's axis
    pid: int | None = None  # the server process examined
    notes: tuple[str, ...] = field(default=())
    resources: ResourceReport | None = None  # the server's threads and open files (resources.py)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["diagnosis"] = self.diagnosis.to_dict() if self.diagnosis else None
        return data


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _stalls(health: tuple[HealthSample, ...], threshold_s: float) -> tuple[StallWindow, ...]:
    """Merge overlapping late or timed-out health requests into stall windows."""
    bad = sorted(
        (h for h in health if h.timed_out or h.latency_s >= threshold_s), key=lambda h: h.t
    )
    windows: list[StallWindow] = []
    for h in bad:
        end = h.t + h.latency_s
        if windows and h.t <= windows[-1].t_end:
            w = windows[-1]
            windows[-1] = StallWindow(
                w.t_start,
                max(w.t_end, end),
                max(w.worst_latency_s, h.latency_s),
                w.timeouts + h.timed_out,
            )
        else:
            windows.append(StallWindow(h.t, end, h.latency_s, int(h.timed_out)))
    return tuple(windows)


def summarize(
    config: ProbeConfig,
    health: tuple[HealthSample, ...],
    streams: tuple[StreamRecord, ...],
) -> tuple[ProbeSummary, tuple[StallWindow, ...], ProbeVerdict]:
    """Percentiles, stall windows and the verdict of a finished run."""
    answered = [h.latency_s for h in health if h.status is not None]
    timeouts = sum(h.timed_out for h in health)
    errors = sum(1 for h in health if h.status is None and not h.timed_out)
    stalls = _stalls(health, config.stall_threshold_s)
    summary = ProbeSummary(
        requests=len(health),
        ok=sum(1 for h in health if h.status is not None and 200 <= h.status < 400),
        timeouts=timeouts,
        errors=errors,
        p50_s=percentile(answered, 50),
        p90_s=percentile(answered, 90),
        p99_s=percentile(answered + [h.latency_s for h in health if h.timed_out], 99),
        max_s=max((h.latency_s for h in health), default=None),
        longest_stall_s=max((w.t_end - w.t_start for w in stalls), default=0.0),
        streams_opened=sum(1 for s in streams if s.status is not None),
        streams_aborted=sum(s.aborted for s in streams),
        streams_failed=sum(1 for s in streams if s.error is not None),
        events=sum(s.events for s in streams),
    )
    ok = timeouts == 0 and summary.p99_s is not None and summary.p99_s < config.p99_threshold_s
    return summary, stalls, ProbeVerdict.PASS if ok else ProbeVerdict.FAIL
