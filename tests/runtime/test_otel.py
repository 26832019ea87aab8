"""OpenTelemetry: stalls and stuck requests in the request's trace, as logs and as metrics.

Real loops, the real middleware, the real OpenTelemetry SDK (in-memory exporters,
and the OTLP/HTTP exporter posting to a receiver on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog, StallRecord, StuckRecord
from hangdoctor.runtime.otel import STALL_EVENT, STUCK_EVENT, HangdoctorOtel

HERE = str(Path(__file__).resolve())
THRESHOLD = 0.1
BLOCK = 0.4

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def _line_of(marker: str) -> int:
    for n, text in enumerate(Path(HERE).read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(f"# otel: {marker}"):
            return n
    raise AssertionError(f"no line marked {marker}")


@dataclass
class Telemetry:
    """Real SDK providers with in-memory exporters, none of them global."""

    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    logs: InMemoryLogRecordExporter = field(default_factory=InMemoryLogRecordExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)

    def __post_init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def otel(self) -> HangdoctorOtel:
        return HangdoctorOtel(
            meter_provider=self.meter_provider, logger_provider=self.logger_provider
        )

    def add_exporter(self, exporter: SpanExporter) -> None:
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    def metric(self, name: str) -> list[Any]:
        """The data points of metric `name`."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for point in m.data.data_points
        ]

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.close()


def _server_span(app: App, telemetry: Telemetry) -> App:
    """What the OpenTelemetry ASGI instrumentation does: the request runs inside its span."""
    tracer = telemetry.tracer_provider.get_tracer("test-server")

    async def traced(scope: Scope, receive: Any, send: Any) -> None:
        with tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}", kind=SpanKind.SERVER
        ):
            await app(scope, receive, send)

    return traced


async def _request(app: App, path: str) -> list[Message]:
    """One GET through the ASGI app; the messages it sent."""
    sent: list[Message] = []
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}

    async def receive() -> Message:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def _respond(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _sleepy_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["path"] == "/slow":
        time.sleep(BLOCK)  # otel: sleep
    await _respond(send)


def _events(span: ReadableSpan, name: str) -> list[Any]:
    return [e for e in span.events if e.name == name]


def _stall_run(telemetry: Telemetry) -> list[StallRecord]:
    """A request that blocks its loop and answers at once, served inside a server span."""
    stalls: list[StallRecord] = []

    async def main() -> None:
        dog = LoopWatchdog(THRESHOLD, log=False, stuck_after=None, on_stall=stalls.append)
        mw = HangdoctorMiddleware(_sleepy_app, watchdog=dog, otel=telemetry.otel())
        app = _server_span(mw, telemetry)
        await _request(app, "/warm-up")  # starts the watchdog (no lifespan here)
        await asyncio.sleep(0.05)
        sent = await _request(app, "/slow")
        assert sent[-1]["body"] == b"ok"
        await asyncio.sleep(0.05)
        await dog.aclose()

    asyncio.run(main())
    return stalls


def test_a_stall_is_an_event_on_the_span_of_the_request_that_caused_it(
    telemetry: Telemetry,
) -> None:
    """GIVEN a request that sleeps on the loop and then answers at once, in a server span
    WHEN the watchdog reports the stall
    THEN the request's span (not the other request's) carries a hangdoctor.stall event with
    the cause and the line, timed inside the span, though the request ended right after the
    stall: the middleware kept the span open until the stall was reported."""
    stalls = _stall_run(telemetry)
    [stall] = [s for s in stalls if s.duration >= BLOCK / 2]
    spans = {s.name: s for s in telemetry.spans.get_finished_spans()}
    assert set(spans) == {"GET /warm-up", "GET /slow"}
    assert not _events(spans["GET /warm-up"], STALL_EVENT)
    slow = spans["GET /slow"]
    [event] = _events(slow, STALL_EVENT)
    attrs = dict(event.attributes or {})
    assert attrs["hangdoctor.code"] == "HD201"
    assert attrs["hangdoctor.name"] == stall.name == "time-sleep-in-async"
    assert attrs["code.file.path"] == stall.file
    assert stall.file.endswith("test_otel.py")
    assert attrs["code.line.number"] == _line_of("sleep")
    assert attrs["code.function.name"] == "_sleepy_app"
    assert attrs["thread.id"] == stall.tid
    assert attrs["thread.name"] == "MainThread"
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/slow"
    assert attrs["hangdoctor.duration"] == pytest.approx(stall.duration)
    assert stall.duration >= BLOCK / 2
    assert slow.start_time is not None and slow.end_time is not None
    assert slow.start_time <= event.timestamp <= slow.end_time


def test_a_stall_is_a_warn_log_record_in_the_trace_and_counted(telemetry: Telemetry) -> None:
    """GIVEN the same stalled request
    THEN one WARN log record says the summary line, carries the attributes and the trace
    and span ids of the request's span; the stall counter has 1 for HD201; the lag
    histogram counted the heartbeats, the stall's lag among them."""
    stalls = _stall_run(telemetry)
    [stall] = [s for s in stalls if s.duration >= BLOCK / 2]
    slow = next(s for s in telemetry.spans.get_finished_spans() if s.name == "GET /slow")
    logs = [
        r.log_record
        for r in telemetry.logs.get_finished_logs()
        if (r.log_record.attributes or {}).get("event.name") == STALL_EVENT
        and (r.log_record.attributes or {}).get("hangdoctor.duration", 0) >= BLOCK / 2
    ]
    [log] = logs
    assert log.body == stall.summary()
    assert "event loop stalled" in str(log.body) and "HD201" in str(log.body)
    assert log.severity_text == "WARN"
    assert log.severity_number is not None and log.severity_number.name == "WARN"
    assert log.trace_id == slow.context.trace_id
    assert log.span_id == slow.context.span_id
    assert (log.attributes or {})["code.line.number"] == _line_of("sleep")

    by_code = {
        p.attributes["hangdoctor.code"]: p.value for p in telemetry.metric("hangdoctor.stalls")
    }
    assert by_code.get("HD201") == 1
    [lag] = telemetry.metric("hangdoctor.loop.lag")
    assert lag.count >= 10  # a heartbeat every threshold/2 at most, over half a second and more
    assert lag.max >= BLOCK / 2
    assert THRESHOLD * 0 < lag.explicit_bounds[0] <= 0.001  # seconds, not milliseconds


def test_a_stall_without_a_span_is_still_logged_and_counted(telemetry: Telemetry) -> None:
    """GIVEN a stall with no span current (no tracing around the request)
    THEN nothing is added to any span, and the log record and counter still go out."""
    stalls: list[StallRecord] = []

    async def main() -> None:
        dog = LoopWatchdog(THRESHOLD, log=False, stuck_after=None, on_stall=stalls.append)
        mw = HangdoctorMiddleware(_sleepy_app, watchdog=dog, otel=telemetry.otel())
        await _request(mw, "/warm-up")
        await asyncio.sleep(0.05)
        await _request(mw, "/slow")
        await asyncio.sleep(0.05)
        await dog.aclose()

    asyncio.run(main())
    assert any(s.duration >= BLOCK / 2 for s in stalls)
    assert telemetry.spans.get_finished_spans() == ()
    logs = [r.log_record for r in telemetry.logs.get_finished_logs()]
    assert any("HD201" in str(r.body) and not r.trace_id for r in logs)
    assert {p.attributes["hangdoctor.code"] for p in telemetry.metric("hangdoctor.stalls")} >= {
        "HD201"
    }


def test_a_stuck_request_is_an_event_on_its_span_and_counted(telemetry: Telemetry) -> None:
    """GIVEN two requests that take two asyncio locks in opposite order, each in its span
    WHEN the watchdog's task check finds the deadlock
    THEN the span of the waiting request gets a hangdoctor.stuck event (HD601, its line,
    its route), a WARN log record is linked to it, and the stuck counter has 1 for HD601."""
    stuck: list[StuckRecord] = []

    async def main() -> None:
        lock_a, lock_b = asyncio.Lock(), asyncio.Lock()
        both = asyncio.Event()
        holding = [0]

        async def app(scope: Scope, receive: Any, send: Any) -> None:
            if scope["path"] == "/warm-up":
                await _respond(send)
                return
            first, second = (lock_a, lock_b) if scope["path"] == "/ab" else (lock_b, lock_a)
            async with first:
                holding[0] += 1
                if holding[0] == 2:
                    both.set()
                await both.wait()
                async with second:  # otel: deadlock
                    await _respond(send)

        dog = LoopWatchdog(0.25, log=False, stuck_after=0.3, on_stuck=stuck.append)
        mw = HangdoctorMiddleware(app, watchdog=dog, otel=telemetry.otel())
        traced = _server_span(mw, telemetry)
        await _request(traced, "/warm-up")
        tasks = [asyncio.create_task(_request(traced, p)) for p in ("/ab", "/ba")]
        deadline = time.monotonic() + 10
        while not stuck and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dog.aclose()

    asyncio.run(main())
    [record] = [r for r in stuck if r.code == "HD601"]
    assert record.request is not None
    spans = {s.name: s for s in telemetry.spans.get_finished_spans()}
    span = spans[f"GET {record.request.path}"]
    [event] = _events(span, STUCK_EVENT)
    attrs = dict(event.attributes or {})
    assert attrs["hangdoctor.code"] == "HD601"
    assert attrs["code.line.number"] == _line_of("deadlock")
    assert attrs["url.path"] == record.request.path
    assert len(attrs["hangdoctor.cycle"]) == 2  # type: ignore[arg-type]
    other = spans["GET /ba" if record.request.path == "/ab" else "GET /ab"]
    assert not _events(other, STUCK_EVENT)  # one episode, reported once, on its own request
    [log] = [
        r.log_record
        for r in telemetry.logs.get_finished_logs()
        if (r.log_record.attributes or {}).get("event.name") == STUCK_EVENT
    ]
    assert log.body == record.summary()
    assert log.span_id == span.context.span_id
    by_code = {
        p.attributes["hangdoctor.code"]: p.value for p in telemetry.metric("hangdoctor.stuck")
    }
    assert by_code == {"HD601": 1}


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint: keeps each POST's path and protobuf body."""

    got: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.got.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_the_stall_event_reaches_an_otlp_http_receiver(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the real OTLP/HTTP span exporter posting to a receiver on 127.0.0.1
    WHEN a request stalls the loop
    THEN the exported protobuf holds the request's span with its hangdoctor.stall event."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    for proxy in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    got: list[tuple[str, bytes]] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        telemetry.add_exporter(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces"))
        _stall_run(telemetry)
    finally:
        server.shutdown()
        server.server_close()
    exported = []
    for path, body in got:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        exported.extend(
            span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
        )
    slow = [s for s in exported if s.name == "GET /slow"]
    assert len(slow) == 1
    events = [e for e in slow[0].events if e.name == STALL_EVENT]
    assert len(events) == 1
    attrs = {a.key: a.value for a in events[0].attributes}
    assert attrs["hangdoctor.code"].string_value == "HD201"
    assert attrs["code.line.number"].int_value == _line_of("sleep")
    assert attrs["url.path"].string_value == "/slow"


def test_the_runtime_imports_without_opentelemetry() -> None:
    """GIVEN an interpreter in which no `opentelemetry` module can be imported
    THEN the runtime (watchdog, middleware) imports and works, and asking the middleware
    for otel says in one sentence which extra to install."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
import hangdoctor.runtime
from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog
import hangdoctor.runtime.middleware, hangdoctor.runtime.watchdog, hangdoctor.runtime.inflight
async def app(scope, receive, send):
    pass
HangdoctorMiddleware(app, watchdog=LoopWatchdog(0.25))
assert not any(m.startswith("opentelemetry") for m in sys.modules), sorted(sys.modules)
try:
    HangdoctorMiddleware(app, otel=True)
except ImportError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "HangdoctorMiddleware(otel=...) needs OpenTelemetry: install hangdoctor-runtime with "
        "its `otel` extra (`pip install '/path/to/hangdoctor/packaging/hangdoctor-runtime[otel]'`"
        " from a checkout) or `pip install opentelemetry-sdk`"
    )


def _docs_example(name: str) -> dict[str, Any]:
    """The JSON block under `<!-- otel-example: NAME -->` in docs/runtime.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "runtime.md").read_text("utf-8")
    block = text.split(f"<!-- otel-example: {name} -->\n```json\n", 1)[1].split("\n```", 1)[0]
    example: dict[str, Any] = json.loads(block)
    return example


def test_the_docs_examples_hold_what_the_sdk_exports(telemetry: Telemetry) -> None:
    """docs/runtime.md shows a stall's span event and log record as the console exporters
    print them: the same names, attributes and value types as a real export of a stall
    of a request, so the example cannot drift from the code."""
    _stall_run(telemetry)
    slow = next(s for s in telemetry.spans.get_finished_spans() if s.name == "GET /slow")
    span = json.loads(slow.to_json())
    [real_event] = [e for e in span["events"] if e["name"] == STALL_EVENT]
    shown_span = _docs_example("span")
    [shown_event] = shown_span["events"]
    assert (shown_span["name"], shown_span["kind"]) == (span["name"], span["kind"])
    assert set(shown_event) == set(real_event)
    assert shown_event["name"] == real_event["name"]

    real_log = next(
        json.loads(r.to_json())
        for r in telemetry.logs.get_finished_logs()
        if (r.log_record.attributes or {}).get("event.name") == STALL_EVENT
        and (r.log_record.attributes or {}).get("hangdoctor.duration", 0) >= BLOCK / 2
    )
    shown_log = _docs_example("log")
    assert set(shown_log) <= set(real_log)  # ids kept, times and the resource cut
    for key in ("severity_number", "severity_text"):
        assert shown_log[key] == real_log[key]
    pattern = (
        r"event loop stalled \d+\.\d{3} s: HD201 time-sleep-in-async "
        r"at \S+:\d+ in \S+ during GET /slow"
    )
    for body in (shown_log["body"], real_log["body"]):
        assert re.fullmatch(pattern, body), body

    for shown, real in (
        (shown_event["attributes"], real_event["attributes"]),
        (shown_log["attributes"], real_log["attributes"]),
    ):
        assert list(shown) == list(real)  # the same attributes, in the order they are set
        assert {k: type(v) for k, v in shown.items()} == {k: type(v) for k, v in real.items()}
        assert shown["hangdoctor.code"] == real["hangdoctor.code"] == "HD201"
