"""What a probe run records: every health request, every stream, the verdict.

The probe engine writes these, the terminal, JSON and HTML renderers read
them. Times are seconds since the probe started (`t`), from one monotonic
clock, so marks from health checks, streams and captures share one axis.

The numbers have one definition each, and the renderers say it:

- Percentiles (p50, p90, p99, max) are over every health request sent. An
  answer counts at its latency; a request that got no answer (timed out, or
  failed) counts at the deadline. Requests that were not answered are never
  left out: 97 timeouts of 100 put p50 at the deadline, not at the three
  answers.
- A stall window starts when a health request is sent that turns out late (no
  answer within the stall threshold) and ends at the next prompt answer to a
  request sent after it; with no such answer, when its last late request
  ended. Throughout it, no health request sent was answered in time, and
  windows never overlap. It can hold several short stalls back to back: the
  window says how long the service did not answer promptly, `worst_latency_s`
  how long the slowest single request took.
- The baseline is a few health requests timed before any stream opens. The
  run fails when its p99 is more than `max_slowdown` times the baseline p99
  (baselines under `BASELINE_FLOOR_S` count as that much: a ratio of two
  sub-millisecond figures is noise, not a slowdown).
- A request to a `--request` path that got no answer within its deadline fails
  the run. It is a stuck request when, all the while it waited, every health
  request answered under the p99 threshold (and at least one did): the loop was
  fine, yet this request never finished, so its task waits on something (HD6xx).
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hangdoctor.model import Diagnosis
from hangdoctor.probe.resources import ResourceReport
from hangdoctor.probe.server_view import ServerView

__all__ = [
    "BASELINE_FLOOR_S",
    "HealthSample",
    "ProbeConfig",
    "ProbeResult",
    "ProbeSummary",
    "ProbeVerdict",
    "RequestSample",
    "RequestStats",
    "StallWindow",
    "StreamRecord",
    "counted_latency",
    "health_was_fine",
    "percentile",
    "split_request",
    "summarize",
    "summarize_requests",
    "with_stuck",
]

BASELINE_FLOOR_S = 0.01


class ProbeVerdict(str, enum.Enum):
    PASS = "pass"  # no timeout, p99 under the threshold and within max_slowdown of the baseline
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
    max_slowdown: float = 10.0  # fail when p99 is more than this many times the baseline p99
    baseline_s: float = 1.0  # health-only timing before the streams start (0: none)
    # requests sent beside the health checks, each "METHOD /path" (see split_request)
    requests: tuple[str, ...] = ()
    request_timeout_s: float = 5.0  # deadline of each of them
    request_interval_s: float = 0.5  # each request path is sent this often
    # read the tasks of a pre-3.14 server from inside it with gdb when requests are stuck
    inject: bool = False
    # the runtime's metrics inside the server: "auto" (<url>/metrics if it serves them),
    # "off", a path, or a URL (see server_view)
    server_metrics: str = "auto"
    # a JSON Lines file of stall and stuck records the server appends (`watch --out`), followed
    # during the run (see server_records); None: not read
    server_records: str | None = None


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
class RequestSample:
    """One request to a `--request` path: when it started, how long it took, what came back."""

    request: str  # "METHOD /path", as in ProbeConfig.requests
    t: float  # start, seconds since the probe started
    latency_s: float  # until the full response, or until the deadline on timeout
    status: int | None  # HTTP status; None on timeout or error
    timed_out: bool = False
    error: str | None = None
    stuck: bool = False  # timed out while every health request answered promptly


@dataclass(frozen=True)
class RequestStats:
    """The figures of one request path over the run, and why it failed the run, if it did."""

    request: str  # "METHOD /path"
    sent: int
    answered: int  # got a response (any status) within the deadline
    ok: int  # of those, 2xx or 3xx
    timeouts: int
    errors: int  # failed without an answer and without timing out (reset, refused)
    stuck: int  # timeouts while the health checks answered under the p99 threshold
    p50_s: float | None  # percentiles as for health: an unanswered request at the deadline
    p99_s: float | None
    max_s: float | None
    health_p99_s: float | None = None  # health p99 while the stuck requests waited
    message: str | None = None  # why the run fails because of this path; None: it does not


@dataclass(frozen=True)
class StallWindow:
    """A span when no health request sent was answered in time (see the module docstring)."""

    t_start: float  # the first late request was sent
    t_end: float  # the next prompt answer, else the end of the window's last late request
    worst_latency_s: float  # the slowest single request of the window
    timeouts: int
    late: int = 0  # health requests of the window that were late or got no answer


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
    longest_stall_s: float  # the longest stall window, not the slowest request (max_s)
    streams_opened: int
    streams_aborted: int
    streams_failed: int
    events: int
    baseline_requests: int = 0
    baseline_p50_s: float | None = None
    baseline_p99_s: float | None = None
    slowdown: float | None = None  # p99 / max(baseline p99, BASELINE_FLOOR_S)


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
    baseline: tuple[HealthSample, ...] = ()  # before the streams; t from the baseline's start
    resources: ResourceReport | None = None  # the server's threads and open files (resources.py)
    request_stats: tuple[RequestStats, ...] = ()  # one per --request path, in config order
    requests: tuple[RequestSample, ...] = ()  # every request to a --request path, by start
    diagnosis_kind: str | None = None  # what triggered the capture shown: "stall" or "stuck"
    server_view: ServerView | None = None  # what the server's runtime saw (server_view.py)

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


def counted_latency(h: HealthSample, deadline_s: float) -> float:
    """The latency a request counts at in the percentiles: the deadline when unanswered."""
    return h.latency_s if h.status is not None else deadline_s


def _late(h: HealthSample, threshold_s: float) -> bool:
    return h.status is None or h.latency_s >= threshold_s


def _stalls(health: tuple[HealthSample, ...], threshold_s: float) -> tuple[StallWindow, ...]:
    """Stall windows: from a late request's send to the next prompt answer (module docstring)."""
    ordered = sorted(health, key=lambda h: h.t)
    prompt = [h for h in ordered if not _late(h, threshold_s)]
    windows: list[StallWindow] = []
    i = 0
    while i < len(ordered):
        first = ordered[i]
        if not _late(first, threshold_s):
            i += 1
            continue
        answers = [h.t + h.latency_s for h in prompt if h.t >= first.t]
        answered_at = min(answers, default=None)
        members = [
            h
            for h in ordered[i:]
            if _late(h, threshold_s) and (answered_at is None or h.t < answered_at)
        ]
        end = answered_at if answered_at is not None else max(h.t + h.latency_s for h in members)
        windows.append(
            StallWindow(
                t_start=first.t,
                t_end=end,
                worst_latency_s=max(h.latency_s for h in members),
                timeouts=sum(h.timed_out for h in members),
                late=len(members),
            )
        )
        last = members[-1]
        i = ordered.index(last, i) + 1
    return tuple(windows)


def summarize(
    config: ProbeConfig,
    health: tuple[HealthSample, ...],
    streams: tuple[StreamRecord, ...],
    baseline: tuple[HealthSample, ...] = (),
) -> tuple[ProbeSummary, tuple[StallWindow, ...], ProbeVerdict]:
    """Percentiles, stall windows and the verdict of a finished run (module docstring)."""
    deadline = config.health_timeout_s
    counted = [counted_latency(h, deadline) for h in health]
    timeouts = sum(h.timed_out for h in health)
    errors = sum(1 for h in health if h.status is None and not h.timed_out)
    stalls = _stalls(health, config.stall_threshold_s)
    base = [counted_latency(h, deadline) for h in baseline]
    p99 = percentile(counted, 99)
    base_p99 = percentile(base, 99)
    slowdown = None
    if p99 is not None and base_p99 is not None:
        slowdown = p99 / max(base_p99, BASELINE_FLOOR_S)
    summary = ProbeSummary(
        requests=len(health),
        ok=sum(1 for h in health if h.status is not None and 200 <= h.status < 400),
        timeouts=timeouts,
        errors=errors,
        p50_s=percentile(counted, 50),
        p90_s=percentile(counted, 90),
        p99_s=p99,
        max_s=max(counted, default=None),
        longest_stall_s=max((w.t_end - w.t_start for w in stalls), default=0.0),
        streams_opened=sum(1 for s in streams if s.status is not None),
        streams_aborted=sum(s.aborted for s in streams),
        streams_failed=sum(1 for s in streams if s.error is not None),
        events=sum(s.events for s in streams),
        baseline_requests=len(baseline),
        baseline_p50_s=percentile(base, 50),
        baseline_p99_s=base_p99,
        slowdown=None if slowdown is None else round(slowdown, 2),
    )
    answered = any(h.status is not None for h in health)
    ok = (
        timeouts == 0
        and answered
        and p99 is not None
        and p99 < config.p99_threshold_s
        and (slowdown is None or slowdown <= config.max_slowdown)
    )
    return summary, stalls, ProbeVerdict.PASS if ok else ProbeVerdict.FAIL


def split_request(text: str) -> tuple[str, str]:
    """("POST", "/transfer") of "POST /transfer"; a bare path is a GET."""
    method, sep, path = text.strip().partition(" ")
    if not sep:
        return "GET", method
    return method, path.strip()


def _format_latency(value_s: float) -> str:
    if value_s < 0.01:
        return f"{value_s * 1000:.1f} ms"
    if value_s < 1.0:
        return f"{value_s * 1000:.0f} ms"
    return f"{value_s:.2f} s"


def _overlapping(
    health: tuple[HealthSample, ...] | list[HealthSample], start: float, end: float
) -> list[HealthSample]:
    return [h for h in health if h.t <= end and h.t + h.latency_s >= start]


def health_was_fine(
    health: tuple[HealthSample, ...] | list[HealthSample],
    start: float,
    end: float,
    threshold_s: float,
) -> bool:
    """Every health request in flight between `start` and `end` answered under `threshold_s`.

    At least one must have: without a health answer there is no evidence that the loop
    was fine. The health request sent just before `start` counts too: its answer came
    while the request waited.
    """
    seen = _overlapping(health, start, end)
    return bool(seen) and all(h.status is not None and h.latency_s < threshold_s for h in seen)


def with_stuck(
    config: ProbeConfig,
    requests: tuple[RequestSample, ...],
    health: tuple[HealthSample, ...],
) -> tuple[RequestSample, ...]:
    """The requests, each timed-out one marked stuck when health was fine all the while."""
    return tuple(
        replace(
            r,
            stuck=r.timed_out
            and health_was_fine(health, r.t, r.t + r.latency_s, config.p99_threshold_s),
        )
        for r in requests
    )


def summarize_requests(
    config: ProbeConfig,
    requests: tuple[RequestSample, ...],
    health: tuple[HealthSample, ...],
) -> tuple[RequestStats, ...]:
    """The figures of each request path, with the reason it fails the run (module docstring)."""
    deadline = config.request_timeout_s
    out: list[RequestStats] = []
    for name in config.requests:
        mine = [r for r in requests if r.request == name]
        counted = [r.latency_s if r.status is not None else deadline for r in mine]
        timeouts = [r for r in mine if r.timed_out]
        stuck = [r for r in timeouts if r.stuck]
        during = [
            counted_latency(h, config.health_timeout_s)
            for h in health
            if any(h.t <= r.t + r.latency_s and h.t + h.latency_s >= r.t for r in stuck)
        ]
        health_p99 = percentile(during, 99)
        message = None
        within = f"within {deadline:g} s"
        if stuck:
            message = (
                f"{len(stuck)} of {len(mine)} {name} requests got no answer {within} while "
                f"{config.health} answered in {_format_latency(health_p99 or 0.0)}: requests "
                "stuck on a healthy loop"
            )
            if len(timeouts) > len(stuck):
                message += (
                    f" ({len(timeouts) - len(stuck)} more timed out while {config.health} "
                    "was slow too)"
                )
        elif timeouts:
            message = (
                f"{len(timeouts)} of {len(mine)} {name} requests got no answer {within}, "
                f"while {config.health} was slow too"
            )
        out.append(
            RequestStats(
                request=name,
                sent=len(mine),
                answered=sum(1 for r in mine if r.status is not None),
                ok=sum(1 for r in mine if r.status is not None and 200 <= r.status < 400),
                timeouts=len(timeouts),
                errors=sum(1 for r in mine if r.status is None and not r.timed_out),
                stuck=len(stuck),
                p50_s=percentile(counted, 50),
                p99_s=percentile(counted, 99),
                max_s=max(counted, default=None),
                health_p99_s=health_p99,
                message=message,
            )
        )
    return tuple(out)
