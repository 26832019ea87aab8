"""OpenTelemetry for the watchdog (the `otel` extra): span events, log records, metrics.

    hangdoctor.stall / hangdoctor.stuck     span events on the request's span
    log records (severity WARN)             body: the record's summary line
    hangdoctor.loop.lag                     histogram (s): how late each heartbeat ran
    hangdoctor.stalls{hangdoctor.code}      counter: stalls by catalog code
    hangdoctor.stuck{hangdoctor.code}       counter: stuck-request episodes (HD6xx)

The request's span is the one current when the request reached
`HangdoctorMiddleware(..., otel=True)`: the server span of the OpenTelemetry
ASGI instrumentation (or of whatever wraps the app); the middleware makes no
span of its own. A stall is found on the watchdog's thread while the loop is
blocked; the middleware keeps the request's span open until the stall is
reported (see `InFlight.hold_span`), so the event lands inside the request that
caused it. The log records carry that span's trace and span ids, so they are
linked to the trace even when no event could be added.

Attributes use the semantic-convention names where they exist (`code.file.path`,
`code.line.number`, `code.function.name`, `thread.id`, `thread.name`,
`http.request.method`, `http.route`, `url.path`, `exception.type`,
`exception.message`); the rest are under `hangdoctor.`. Records are scrubbed of
secret-looking values when they are made; no query string or header is sent.

Imported only when asked for: the rest of the runtime is standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.util.types import AttributeValue

from hangdoctor.model import RequestInfo
from hangdoctor.runtime import inflight
from hangdoctor.runtime.stall import StallRecord
from hangdoctor.runtime.stuck import StuckRecord
from hangdoctor.runtime.watchdog import LoopWatchdog

__all__ = [
    "LAG_BUCKETS",
    "STALL_EVENT",
    "STUCK_EVENT",
    "HangdoctorOtel",
    "current_span",
    "instrument",
    "stall_attributes",
    "stuck_attributes",
]

STALL_EVENT = "hangdoctor.stall"
STUCK_EVENT = "hangdoctor.stuck"
_SCOPE = "hangdoctor"
# the Prometheus histogram's buckets: OTel's default ones (0, 5, 10, ... 10000) suit
# milliseconds, not a lag in seconds
LAG_BUCKETS: Sequence[float] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

Attributes = dict[str, AttributeValue]


def current_span() -> Any:
    """The span current in this context, or None when there is none (no valid span)."""
    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


class HangdoctorOtel:
    """Stalls and stuck requests as OpenTelemetry span events, log records and metrics.

    Providers default to the global ones (`opentelemetry.trace`, `metrics`,
    `_logs`). Pass it to the middleware (`otel=`) or call `watch(watchdog)`.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        logger_provider: _logs.LoggerProvider | None = None,
    ) -> None:
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self.loop_lag = meter.create_histogram(
            "hangdoctor.loop.lag",
            unit="s",
            description="How late the event loop ran the watchdog's heartbeat (loop lag).",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        )
        self.stalls = meter.create_counter(
            "hangdoctor.stalls",
            unit="{stall}",
            description="Event-loop stalls longer than the watchdog threshold, by catalog code.",
        )
        self.stuck = meter.create_counter(
            "hangdoctor.stuck",
            unit="{episode}",
            description="Episodes of requests or tasks stuck on a healthy loop (HD6xx), "
            "by catalog code; each counted once, when it is first reported.",
        )
        self._logger = _logs.get_logger(_SCOPE, logger_provider=logger_provider)

    def watch(self, watchdog: LoopWatchdog) -> None:
        """Send `watchdog`'s loop lag, stalls and stuck records (on its own thread)."""
        watchdog.add_lag_listener(self.loop_lag.record)
        watchdog.add_stall_listener(self.stall)
        watchdog.add_stuck_listener(self.stuck_record)

    def stall(self, record: StallRecord) -> None:
        """One stall: a span event on its request's span, a log record, the counter."""
        attributes = stall_attributes(record)
        self.stalls.add(1, {"hangdoctor.code": record.code})
        started = int(record.started_at * 1e9)
        self._emit(STALL_EVENT, record.request, record.summary(), attributes, started)

    def stuck_record(self, record: StuckRecord) -> None:
        """One stuck episode: a span event on its request's span, a log record, the counter."""
        attributes = stuck_attributes(record)
        self.stuck.add(1, {"hangdoctor.code": record.code})
        seen = int(record.seen_at * 1e9)
        self._emit(STUCK_EVENT, record.request, record.summary(), attributes, seen)

    def _emit(
        self,
        event: str,
        request: RequestInfo | None,
        summary: str,
        attributes: Attributes,
        at_ns: int,
    ) -> None:
        span = inflight.span_of(request)
        ids: dict[str, Any] = {}
        if span is not None:
            # the event is timed when the stall began (or the check saw the tasks), so it
            # sits at the right place on the request's timeline
            span.add_event(event, attributes, timestamp=at_ns)
            ctx = span.get_span_context()
            ids = {"trace_id": ctx.trace_id, "span_id": ctx.span_id, "trace_flags": ctx.trace_flags}
        self._logger.emit(
            LogRecord(
                timestamp=at_ns,
                observed_timestamp=time.time_ns(),
                severity_text="WARN",
                severity_number=SeverityNumber.WARN,
                body=summary,
                attributes={"event.name": event, **attributes},
                **ids,
            )
        )


def instrument(
    watchdog: LoopWatchdog,
    *,
    meter_provider: metrics.MeterProvider | None = None,
    logger_provider: _logs.LoggerProvider | None = None,
) -> HangdoctorOtel:
    """Send `watchdog`'s stalls, stuck records and lag to OpenTelemetry; the instrumentation.

    Span events need the middleware with `otel=` (it keeps each request's span);
    without it, log records and metrics are still sent.
    """
    otel = HangdoctorOtel(meter_provider=meter_provider, logger_provider=logger_provider)
    otel.watch(watchdog)
    return otel


def stall_attributes(record: StallRecord) -> Attributes:
    """The attributes of a stall's span event and log record."""
    attributes: Attributes = {
        "hangdoctor.code": record.code,
        "hangdoctor.name": record.name,
        "hangdoctor.message": record.message,
        "hangdoctor.duration": record.duration,
        "hangdoctor.state": record.state,
        **_where(record.file, record.line, record.function, record.source),
        **_thread(record.tid, record.thread),
        **_request(record.request),
    }
    if record.waits_for is not None:
        attributes["hangdoctor.waits_for"] = record.waits_for.description
    if record.in_flight is not None:
        attributes["hangdoctor.in_flight"] = record.in_flight
    return attributes


def stuck_attributes(record: StuckRecord) -> Attributes:
    """The attributes of a stuck record's span event and log record."""
    attributes: Attributes = {
        "hangdoctor.code": record.code,
        "hangdoctor.name": record.name,
        "hangdoctor.message": record.message,
        **_where(record.file, record.line, record.function, record.source),
        **_thread(record.tid, record.thread),
        **_request(record.request),
    }
    if record.waiting_s is not None:
        attributes["hangdoctor.waiting"] = record.waiting_s
    if record.task is not None:
        attributes["hangdoctor.task"] = record.task
    if record.cycle:
        attributes["hangdoctor.cycle"] = list(record.cycle)
    if record.waits_on is not None:
        attributes["hangdoctor.waits_on"] = record.waits_on.describe()
    # a task that ended with an exception (HD603: the reader that died) is the cause
    failed = next((h.exception for h in record.holders if h.exception), None)
    if failed is not None:
        attributes["exception.type"] = failed.partition("(")[0]
        attributes["exception.message"] = failed
    return attributes


def _where(file: str, line: int, function: str, source: str | None) -> Attributes:
    where: Attributes = {
        "code.file.path": file,
        "code.line.number": line,
        "code.function.name": function,
    }
    if source:
        where["hangdoctor.source"] = source
    return where


def _thread(tid: int, name: str | None) -> Attributes:
    thread: Attributes = {"thread.id": tid}
    if name:
        thread["thread.name"] = name
    return thread


def _request(request: RequestInfo | None) -> Attributes:
    if request is None:
        return {}
    found: Attributes = {"http.request.method": request.method, "url.path": request.path}
    if request.route:
        found["http.route"] = request.route
    if request.request_id:
        found["hangdoctor.request_id"] = request.request_id
    if request.streaming:
        found["hangdoctor.streaming"] = True
    if request.disconnected:
        found["hangdoctor.client_disconnected"] = True
    return found
