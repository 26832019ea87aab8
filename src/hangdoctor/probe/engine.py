"""The probe: stream clients that drop their connections, a health timer, a timeline.

`run_probe` checks that the service answers, then for `duration_s` runs
`clients` stream clients (open a stream, read events, drop it at a random
moment with an RST or a FIN, reconnect) on this event loop, while the health
clock, a child process (see `clock`), starts a health request every
`health_interval_s` on a fixed schedule, each with its own deadline, so a
stall shows as a run of late requests rather than a gap, and the stream
clients' load never delays a measurement. A health request still waiting at
`stall_threshold_s` triggers a capture of the server's stacks (see `catch`),
in a thread. Every request and stream lands in the timeline; `summarize`
gives the verdict.

Beside the health checks, each `--request` path is sent every
`request_interval_s` (at most `MAX_REQUESTS_IN_FLIGHT` at once per path) from
this loop, each with its own deadline. One that gets no answer within it while
the health checks answer promptly is a request stuck on a healthy loop: the
first such moment triggers a capture that reads the server's tasks (CPython
3.14+, from outside; see `catch`).

The run is bounded: it ends at `duration_s` plus the deadline of the health
requests (and `--request`s) still in flight, or earlier when the service cannot
be probed (the server went away, a stream path is not an event stream), which
raises `ProbeError` (exit 2).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import re
import resource
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hangdoctor.capture.procs import process_info
from hangdoctor.probe.catch import STUCK, Catcher, server_pids, with_health
from hangdoctor.probe.clock import ClockConfig, describe_error
from hangdoctor.probe.clock_process import ClockProcess
from hangdoctor.probe.errors import ProbeError, describe_connect_error
from hangdoctor.probe.resources import SAMPLE_EVERY_S, SETTLE_S, ResourceWatch
from hangdoctor.probe.server_records import RecordFollower, check_records_file
from hangdoctor.probe.server_view import ServerView, ServerWatch, metrics_target
from hangdoctor.probe.sse_client import Exchange, ResponseHead, build_request, open_exchange
from hangdoctor.probe.target import Endpoint, parse_request, parse_target, request_path
from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    ProbeVerdict,
    RequestSample,
    StreamRecord,
    health_was_fine,
    split_request,
    summarize,
    summarize_requests,
    with_stuck,
)

__all__ = ["MAX_CLIENTS", "ProbeError", "ProbeProgress", "probe", "run_probe"]

MAX_CLIENTS = 2000
MAX_DURATION_S = 3600.0
MAX_REQUEST_PATHS = 20
MAX_REQUESTS_IN_FLIGHT = 4  # per --request path: a tick with this many waiting is skipped
MAX_STUCK_CAPTURE_S = 3.0  # the span over which a stuck capture reads the tasks
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PROGRESS_EVERY_S = 0.2
_RETRY_AFTER_FAILURE_S = 0.1  # a stream that failed is retried after this pause
_CAPTURE_WAIT_S = 20.0  # the longest the end of a run waits for a running capture
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class ProbeProgress:
    """A live view of a running probe, handed to `on_progress` about five times a second."""

    t: float  # seconds since the probe started
    duration_s: float
    health_requests: int  # answered, timed out or failed so far
    in_flight: int  # health requests still waiting
    timeouts: int
    errors: int
    p99_s: float | None  # over the finished health requests so far (timeouts included)
    last_latency_s: float | None
    streams_open: int
    streams_opened: int
    streams_aborted: int
    streams_failed: int
    stalled: bool  # a health request is waiting past the stall threshold right now
    captures: int  # catch-in-the-act captures started
    capturing: bool
    done: bool = False
    requests: int = 0  # --request requests ended so far
    request_timeouts: int = 0  # of those, no answer within --request-timeout


def _validate(config: ProbeConfig) -> tuple[Endpoint, str, tuple[str, ...], tuple[str, ...]]:
    endpoint, health = parse_target(config.url, config.health)
    streams = tuple(request_path(p, endpoint, what="--stream") for p in config.streams)
    requests = tuple(dict.fromkeys(parse_request(r, endpoint) for r in config.requests))
    if len(requests) > MAX_REQUEST_PATHS:
        raise ProbeError(
            f"{len(requests)} --request paths are too many.",
            f"Pass at most {MAX_REQUEST_PATHS}: the ones whose requests hang.",
        )
    if not 0 <= config.clients <= MAX_CLIENTS:
        raise ProbeError(
            f"{config.clients} clients is out of range.", f"Use 0 to {MAX_CLIENTS} clients."
        )
    if config.clients and not streams:
        raise ProbeError(
            "Stream clients were asked for but no stream path was given.",
            "Pass --stream PATH (repeatable), or --clients 0 to time health only.",
        )
    if not 0 < config.duration_s <= MAX_DURATION_S:
        raise ProbeError(
            f"A duration of {config.duration_s} s is out of range.",
            f"Use more than 0 and at most {MAX_DURATION_S:.0f} seconds.",
        )
    if not 0 < config.abort_min_s <= config.abort_max_s:
        raise ProbeError(
            f"The abort range {config.abort_min_s}-{config.abort_max_s} s is not valid.",
            "Give MIN-MAX seconds with 0 < MIN <= MAX, like --abort-after 0.2-3.",
        )
    positive: dict[str, float] = {
        "--health-interval": config.health_interval_s,
        "--health-timeout": config.health_timeout_s,
        "--p99-threshold": config.p99_threshold_s,
        "--stall-threshold": config.stall_threshold_s,
        "--request-timeout": config.request_timeout_s,
    }
    for name, value in positive.items():
        if not value > 0:
            raise ProbeError(f"{name} must be more than 0 seconds.", f"Pass {name} 0.5, say.")
    if not 1.0 <= config.max_slowdown <= 1e6:
        raise ProbeError(
            f"--max-slowdown {config.max_slowdown:g} is out of range.",
            "Give a factor of 1 or more, like --max-slowdown 5.",
        )
    if not 0.0 <= config.baseline_s <= 60.0:
        raise ProbeError(
            f"A baseline of {config.baseline_s:g} s is out of range.",
            "Use 0 (no baseline) to 60 seconds.",
        )
    if config.health_interval_s < 0.01:
        raise ProbeError(
            "A health interval under 10 ms would flood the service.",
            "Pass --health-interval 0.05 or more.",
        )
    if requests and config.request_interval_s < 0.05:
        raise ProbeError(
            "A request interval under 50 ms would flood the service.",
            "Pass --request-interval 0.1 or more.",
        )
    if not _TOKEN.match(config.method):
        raise ProbeError(f"{config.method!r} is not an HTTP method.", "Pass --method GET or POST.")
    for header, text in config.headers:
        if not _TOKEN.match(header) or any(c in text for c in "\r\n"):
            raise ProbeError(
                f"The header {header!r} is not valid.", "Pass --header 'Name: value' on one line."
            )
    return endpoint, health, streams, requests


def _ensure_fds(needed: int) -> None:
    """Raise the soft open-files limit to what the clients need, if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ProbeError(
            f"{needed} open files are needed, but the limit is {hard}.",
            f"Raise it (ulimit -n {needed}) or use fewer --clients.",
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class _Run:
    """One probe run: owns the timeline while it is being written."""

    def __init__(
        self,
        config: ProbeConfig,
        endpoint: Endpoint,
        health_path: str,
        stream_paths: tuple[str, ...],
        on_progress: Callable[[ProbeProgress], None] | None,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.stream_paths = stream_paths
        self.request_names = config.requests  # "METHOD /path", validated
        self.on_progress = on_progress
        self.ssl = endpoint.ssl_context(insecure=config.insecure)
        self.address = endpoint.host
        self.rng = random.Random(config.seed)
        headers = config.headers
        self.health_request = build_request(
            "GET", health_path, endpoint.host_header, headers=headers
        )
        body = config.body.encode("utf-8") if config.body is not None else None
        self.stream_requests = {
            p: build_request(
                config.method,
                p,
                endpoint.host_header,
                headers=headers,
                body=body,
                accept="text/event-stream",
            )
            for p in stream_paths
        }
        self.request_bytes = {
            name: build_request(
                method,
                path,
                endpoint.host_header,
                headers=headers,
                body=b"" if method in _BODY_METHODS else None,
            )
            for name in self.request_names
            for method, path in [split_request(name)]
        }
        self.requests: list[RequestSample] = []
        self._requests_in_flight: dict[str, int] = dict.fromkeys(self.request_names, 0)
        self._request_answered: dict[str, bool] = dict.fromkeys(self.request_names, False)
        self._request_tasks: set[asyncio.Task[None]] = set()
        self._request_timeouts = 0
        self._stuck_caught = False  # a capture was started for requests stuck on a healthy loop
        self.health_path = health_path
        self.t0 = 0.0
        self.health: list[HealthSample] = []
        self.baseline: list[HealthSample] = []  # health alone, before the streams
        self.activity: list[float] = []  # stream events received while a capture ran
        self._baseline_t0 = 0.0
        self.streams: list[StreamRecord] = []
        self._latencies: list[float] = []  # sorted, for the running p99
        self._pending: set[int] = set()  # health requests started and not yet ended
        self._late: set[int] = set()  # of those, the ones past the stall threshold
        self._draining = False  # the duration is over: no new streams, no new captures
        self._opened: dict[str, bool] = dict.fromkeys(stream_paths, False)
        self._open_now = 0
        self._timeouts = 0
        self._errors = 0
        self._opened_total = 0
        self._aborted_total = 0
        self._failed_total = 0
        self._stopping = False
        self._stop = asyncio.Event()
        self._fatal: ProbeError | None = None
        self.catcher: Catcher | None = None
        self._window_open = False  # a capture covers the current stall window
        self._window_started = 0.0
        self.resources: ResourceWatch | None = None  # the server's threads and fds, if known
        self._resource_task: asyncio.Task[None] | None = None
        self.server: ServerWatch | None = None  # the runtime's metrics inside the server
        self.records: RecordFollower | None = None  # the records it appends (--server-records)

    # -- clock -------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- before the clients start -----------------------------------------

    async def preflight(self) -> None:
        """Resolve the host, connect, and GET the health path once: nothing runs if this fails."""
        timeout = self.config.health_timeout_s
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(self.endpoint.host, self.endpoint.port, type=socket.SOCK_STREAM),
                timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            if isinstance(exc, socket.gaierror):
                raise describe_connect_error(exc, self.endpoint.netloc, secure=False) from None
            raise ProbeError(
                f"The host {self.endpoint.host!r} could not be resolved within {timeout:g} s.",
                "Check the host name in the URL, or use the server's IP address.",
            ) from None
        self.address = str(infos[0][4][0])
        started = time.monotonic()
        if self.endpoint.secure:
            await self._tcp_preflight(timeout)
        try:
            exchange = await open_exchange(
                self.address,
                self.endpoint.port,
                self.health_request,
                ssl_context=self.ssl,
                server_hostname=self.endpoint.host,
                timeout=timeout,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            if self.endpoint.secure and _handshake_timed_out(exc):
                raise ProbeError(
                    f"{self.endpoint.netloc} accepted the TCP connection but never completed "
                    f"the TLS handshake within {timeout:g} s.",
                    "The service is hanging already (run `hangdoctor diagnose` to see why), "
                    "or the port does not serve HTTPS.",
                ) from None
            raise describe_connect_error(
                exc, self.endpoint.netloc, secure=self.endpoint.secure
            ) from None
        try:
            left = max(0.0, timeout - (time.monotonic() - started))
            done, _ = await asyncio.wait({exchange.head}, timeout=left)
            if not done:
                raise ProbeError(
                    f"{self.endpoint.netloc} accepted the connection but sent no response to "
                    f"GET {self.health_path} within {timeout:g} s.",
                    "The service is hanging already (run `hangdoctor diagnose` to see why), "
                    "or the port does not serve "
                    + ("HTTPS." if self.endpoint.secure else "HTTP (use https:// for TLS)."),
                )
            try:
                head = exchange.head.result()
            except (OSError, ValueError) as exc:
                raise ProbeError(
                    f"{self.endpoint.netloc} did not answer GET {self.health_path} with HTTP "
                    f"({exc}).",
                    "Check that the URL's port serves "
                    + ("HTTPS." if self.endpoint.secure else "HTTP (use https:// for TLS)."),
                ) from None
            if not 200 <= head.status < 400:
                raise ProbeError(
                    f"GET {self.health_path} returned HTTP {head.status}, so it cannot serve "
                    "as the health check.",
                    "Pass the path of an endpoint that answers 2xx with --health PATH.",
                )
        finally:
            exchange.close()

    async def _tcp_preflight(self, timeout: float) -> None:
        """Connect without TLS first, so a handshake that never ends is not blamed on the network.

        A hung server's kernel still completes the TCP handshake (the listen backlog), and
        then the TLS handshake waits forever; only a plain connect tells the two apart.
        """
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.address, self.endpoint.port), timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise describe_connect_error(exc, self.endpoint.netloc, secure=False) from None
        writer.close()

    # -- the run -----------------------------------------------------------

    async def execute(self, catcher: Catcher | None) -> tuple[float, float]:
        """Run clients and the health clock until the duration ends; (started_at, elapsed)."""
        self.catcher = catcher
        await self._measure_baseline()
        clock = ClockProcess(self._on_clock_report)
        await clock.start()  # before t0: the child is up and has imported what it needs
        clients: list[asyncio.Task[None]] = []
        senders: list[asyncio.Task[None]] = []
        ticker: asyncio.Task[None] | None = None
        scraper: asyncio.Task[None] | None = None
        reader: asyncio.Task[None] | None = None
        try:
            self.t0 = time.monotonic()
            started_at = time.time()
            clock.begin(self._clock_config())
            clients = [
                asyncio.create_task(self._client(i, self.stream_paths[i % len(self.stream_paths)]))
                for i in range(self.config.clients)
            ]
            ticker = asyncio.create_task(self._ticker())
            senders = [asyncio.create_task(self._send_requests(n)) for n in self.request_names]
            self._resource_task = asyncio.create_task(self._watch_resources())
            if self.server is not None:
                # until the very end: a stall in the last health requests is seen from inside too
                scraper = asyncio.create_task(self.server.run(lambda: not self._stopping))
            if self.records is not None:
                reader = asyncio.create_task(self.records.run(lambda: not self._stopping))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.duration_s)
            self._draining = True
            await _cancel_all([*clients, *senders])
            if self._fatal is None:
                # health requests still in flight end by their own deadline: a stall at the
                # very end is measured, not cut short
                await clock.wait_end(self.config.health_timeout_s + 5.0)
            if self._fatal is None and self._request_tasks:
                # so do the --requests: a request stuck at the very end still counts
                await asyncio.wait(
                    set(self._request_tasks), timeout=self.config.request_timeout_s + 5.0
                )
            if self._fatal is not None:
                raise self._fatal
            await self._wait_for_capture()
        finally:
            self._stopping = True
            await clock.aclose()
            await _cancel_all(
                [
                    *clients,
                    *senders,
                    *self._request_tasks,
                    *([ticker] if ticker else []),
                    *([scraper] if scraper else []),
                    *([reader] if reader else []),
                ]
            )
        if self.on_progress is not None:
            self.on_progress(self.progress(done=True))
        return started_at, self.now()

    async def _measure_baseline(self) -> None:
        """Time health alone for `baseline_s`, before any stream opens: the run's yardstick.

        A loop that answers in 2 ms alone and in 150 ms under ten streams is 75 times
        slower, yet under a 500 ms threshold; only a baseline of the same service on the
        same machine shows it. A clock of its own, so the run's clock starts clean.
        """
        if self.config.baseline_s <= 0:
            return
        clock = ClockProcess(self._on_baseline_report)
        await clock.start()
        try:
            self._baseline_t0 = time.monotonic()
            config = replace(
                self._clock_config(), t0=self._baseline_t0, duration_s=self.config.baseline_s
            )
            clock.begin(config)
            await clock.wait_end(self.config.baseline_s + self.config.health_timeout_s + 5.0)
        finally:
            await clock.aclose()

    def _on_baseline_report(self, message: list[Any]) -> None:
        if message[0] == "done":
            _, _, start, latency, status, timed_out, error = message
            t = start - self._baseline_t0
            self.baseline.append(HealthSample(t, latency, status, timed_out, error))

    async def _watch_resources(self) -> None:
        """Count the server's threads and fds while streams are dropped (see resources)."""
        while self.resources is not None and not self._draining and not self._stopping:
            # a few listdir calls on /proc: far below a millisecond, not worth a thread
            self.resources.sample("during", self._aborted_total)  # hangdoctor: ignore[HD205]
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def settle_resources(self) -> None:
        """After the run: sample until the counts are back down, for at most SETTLE_S."""
        if self.resources is None:
            return
        end = time.monotonic() + SETTLE_S
        while True:
            self.resources.sample("after", self._aborted_total)  # hangdoctor: ignore[HD205]
            if self.resources.settled() or time.monotonic() >= end:
                return
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _wait_for_capture(self) -> None:
        if self.catcher is None:
            return
        deadline = time.monotonic() + _CAPTURE_WAIT_S
        while self.catcher.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _fail(self, error: ProbeError) -> None:
        if self._fatal is None and not self._stopping:
            self._fatal = error
            self._stop.set()

    def _refused(self) -> None:
        self._fail(
            ProbeError(
                f"The server at {self.endpoint.netloc} stopped accepting connections "
                f"{self.now():.1f} s into the run (connection refused).",
                "It exited or crashed: check its log. The probe stopped early.",
            )
        )

    # -- health ------------------------------------------------------------

    def _clock_config(self) -> ClockConfig:
        c = self.config
        return ClockConfig(
            address=self.address,
            port=self.endpoint.port,
            request=self.health_request.decode("latin-1"),
            tls=self.endpoint.secure,
            server_hostname=self.endpoint.host,
            insecure=c.insecure,
            t0=self.t0,
            interval_s=c.health_interval_s,
            timeout_s=c.health_timeout_s,
            stall_s=c.stall_threshold_s,
            duration_s=c.duration_s,
        )

    def _on_clock_report(self, message: list[Any]) -> None:
        """A report of the health clock: a request started, is late, or ended."""
        kind, k = message[0], message[1]
        if kind == "start":
            self._pending.add(k)
        elif kind == "late":
            if k in self._pending:
                self._late.add(k)
                self._on_late()
        elif kind == "done":
            _, _, start, latency, status, timed_out, error = message
            self._pending.discard(k)
            self._late.discard(k)
            t = start - self.t0
            self.health.append(HealthSample(t, latency, status, timed_out, error))
            self._timeouts += timed_out
            self._errors += error is not None
            # no answer counts at the deadline, as in the summary (timeline.counted_latency)
            bisect.insort(
                self._latencies, latency if status is not None else self.config.health_timeout_s
            )
            if error == "connection refused":
                self._refused()
            if (
                status is not None
                and latency < self.config.stall_threshold_s
                and t > self._window_started
            ):
                self._window_open = False  # a prompt answer after the capture: stall over

    def _on_stream_event(self) -> None:
        """An event came from the server: its loop ran. Kept only while stacks are sampled."""
        if self.catcher is not None and self.catcher.busy:
            self.activity.append(self.now())

    def _on_late(self) -> None:
        """A health request is still waiting at the stall threshold: catch the server now."""
        if self.catcher is None or self._window_open or self._draining:
            return
        if self.catcher.trigger():
            self._window_open = True
            self._window_started = self.now()

    # -- requests with a deadline --------------------------------------------

    async def _send_requests(self, name: str) -> None:
        """Send `name` at t = k * interval until the duration ends, each with its deadline.

        A tick with MAX_REQUESTS_IN_FLIGHT of them still waiting is skipped: requests that
        hang pile up at the server, and a few are enough to show it.
        """
        interval = self.config.request_interval_s
        k = 0
        while not self._draining and not self._stopping:
            due = k * interval
            if due >= self.config.duration_s:
                return
            delay = due - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if self._requests_in_flight[name] < MAX_REQUESTS_IN_FLIGHT:
                task = asyncio.create_task(self._request_once(name))
                self._request_tasks.add(task)
                task.add_done_callback(self._request_tasks.discard)
            # fallen behind: skip the missed ticks, never burst
            k = max(k + 1, int(self.now() / interval) + 1)

    async def _request_once(self, name: str) -> None:
        """One request to a --request path, from connect to the end of the body or its deadline."""
        deadline = self.config.request_timeout_s
        t = self.now()
        started = time.monotonic()
        status: int | None = None
        timed_out = False
        error: str | None = None
        self._requests_in_flight[name] += 1
        try:
            status = await asyncio.wait_for(self._exchange(name, deadline), deadline)
        except asyncio.TimeoutError:
            timed_out = True
        except ConnectionRefusedError:
            error = "connection refused"
            self._refused()
        except (OSError, ssl.SSLError, ValueError) as exc:
            error = describe_error(exc)
        finally:
            self._requests_in_flight[name] -= 1
        latency = time.monotonic() - started
        self.requests.append(RequestSample(name, t, latency, status, timed_out, error))
        self._request_timeouts += timed_out
        if status is not None:
            self._check_request_status(name, status)
        if timed_out:
            self._on_request_timeout(t)

    async def _exchange(self, name: str, deadline: float) -> int:
        exchange = await open_exchange(
            self.address,
            self.endpoint.port,
            self.request_bytes[name],
            ssl_context=self.ssl,
            server_hostname=self.endpoint.host,
            timeout=deadline,
        )
        try:
            head = await exchange.head
            await exchange.done
            return head.status
        finally:
            exchange.close()

    def _check_request_status(self, name: str, status: int) -> None:
        """A path or method the server does not have is a typo, not a hang: stop at once."""
        if status in (404, 405) and not self._request_answered[name]:
            self._fail(
                ProbeError(
                    f"The request {name} returned HTTP {status}: the server has no such "
                    + ("route." if status == 404 else "method on that route."),
                    "Check it with curl and pass the right --request 'METHOD PATH'.",
                )
            )
        elif 200 <= status < 400:
            self._request_answered[name] = True

    def _on_request_timeout(self, t_sent: float) -> None:
        """A --request got no answer in time. With health fine all the while: read the tasks."""
        if self.catcher is None or self._stuck_caught or self._stopping:
            return
        now = self.now()
        if self._late or not health_was_fine(self.health, t_sent, now, self.config.p99_threshold_s):
            return  # the loop itself was slow: a stall, caught as one
        span = min(self.config.request_timeout_s, MAX_STUCK_CAPTURE_S)
        if self.catcher.trigger(STUCK, stuck_after=span):
            self._stuck_caught = True

    # -- streams -----------------------------------------------------------

    async def _client(self, client: int, path: str) -> None:
        while not self._draining and not self._stopping:
            pause = await self._stream_once(client, path)
            if pause:
                await asyncio.sleep(pause)

    async def _stream_once(self, client: int, path: str) -> float:
        """One stream from connect to abort; the pause before the next one."""
        t_open = self.now()
        deadline = self.config.health_timeout_s
        exchange: Exchange | None = None
        head: ResponseHead | None = None
        aborted = False
        error: str | None = None
        opened = False
        try:
            try:
                exchange = await open_exchange(
                    self.address,
                    self.endpoint.port,
                    self.stream_requests[path],
                    ssl_context=self.ssl,
                    server_hostname=self.endpoint.host,
                    count_events=True,
                    on_event=self._on_stream_event,
                    timeout=deadline,
                )
            except ConnectionRefusedError:
                error = "connection refused"
                self._refused()
                return _RETRY_AFTER_FAILURE_S
            except asyncio.TimeoutError:
                error = f"not connected within {deadline:g} s"
                return _RETRY_AFTER_FAILURE_S
            except (OSError, ssl.SSLError) as exc:
                error = describe_error(exc)
                return _RETRY_AFTER_FAILURE_S
            left = max(0.0, deadline - (self.now() - t_open))
            done, _ = await asyncio.wait({exchange.head}, timeout=left)
            if not done:
                error = f"no response headers within {deadline:g} s"
                self._check_silent_path(path, t_open)
                return _RETRY_AFTER_FAILURE_S
            try:
                head = exchange.head.result()
            except (OSError, ValueError) as exc:
                error = describe_error(exc)
                return _RETRY_AFTER_FAILURE_S
            if not 200 <= head.status < 300 or not head.is_event_stream:
                error = self._bad_stream(path, head)
                return _RETRY_AFTER_FAILURE_S
            opened = True
            self._opened[path] = True
            self._open_now += 1
            self._opened_total += 1
            hold = self.rng.uniform(self.config.abort_min_s, self.config.abort_max_s)
            ended, _ = await asyncio.wait({exchange.done}, timeout=hold)
            if not ended:
                exchange.close(reset=self.rng.random() < 0.5)
                aborted = True
                return 0.0  # a client that dropped a stream on purpose comes straight back
            if exchange.events == 0:
                error = "the server closed the stream before any event"
            return _RETRY_AFTER_FAILURE_S  # the server ended it: do not spin on a closing server
        finally:
            if opened:
                self._open_now -= 1
            if exchange is not None and not exchange.closed:
                exchange.close()
            self._aborted_total += aborted
            self._failed_total += error is not None
            first = exchange.first_event_at if exchange is not None else None
            self.streams.append(
                StreamRecord(
                    client=client,
                    path=path,
                    t_open=t_open,
                    t_first_event=None if first is None else first - self.t0,
                    t_end=self.now(),
                    events=exchange.events if exchange is not None else 0,
                    status=head.status if head is not None else None,
                    aborted=aborted,
                    error=error,
                )
            )

    def _bad_stream(self, path: str, head: ResponseHead) -> str:
        """The error of a stream response that is not an open event stream; fatal at first."""
        if not 200 <= head.status < 300:
            error = f"HTTP {head.status}"
            problem = ProbeError(
                f"The stream path {path} returned HTTP {head.status}.",
                "Check it with `curl -N` and pass the right --stream PATH "
                "(with --method, --body or --header if the endpoint needs them).",
            )
        else:
            kind = head.content_type or "no content type"
            error = f"not an event stream ({kind})"
            problem = ProbeError(
                f"The stream path {path} answered with {kind}, not text/event-stream: "
                "it is not a server-sent events stream.",
                "Pass the path of an SSE endpoint with --stream PATH.",
            )
        if not self._opened[path]:
            self._fail(problem)
        return error

    def _check_silent_path(self, path: str, t_open: float) -> None:
        """A path that never sent headers while health answered promptly is not a stream."""
        if self._opened[path]:
            return
        prompt = any(
            h.t >= t_open and h.status is not None and h.latency_s < self.config.stall_threshold_s
            for h in self.health
        )
        if prompt:
            self._fail(
                ProbeError(
                    f"The stream path {path} sent no response headers within "
                    f"{self.config.health_timeout_s:g} s while {self.health_path} answered "
                    "promptly.",
                    "An SSE endpoint must send its headers at once: check the path with "
                    "`curl -N`, and that the endpoint does not wait for a first event.",
                )
            )

    # -- progress ----------------------------------------------------------

    async def _ticker(self) -> None:
        if self.on_progress is None:
            return
        while not self._stopping:
            self.on_progress(self.progress())
            await asyncio.sleep(_PROGRESS_EVERY_S)

    def progress(self, *, done: bool = False) -> ProbeProgress:
        lat = self._latencies
        p99 = lat[max(0, -(-len(lat) * 99 // 100) - 1)] if lat else None
        return ProbeProgress(
            t=min(self.now(), self.config.duration_s) if not done else self.now(),
            duration_s=self.config.duration_s,
            health_requests=len(self.health),
            in_flight=len(self._pending),
            timeouts=self._timeouts,
            errors=self._errors,
            p99_s=p99,
            last_latency_s=self.health[-1].latency_s if self.health else None,
            streams_open=self._open_now,
            streams_opened=self._opened_total,
            streams_aborted=self._aborted_total,
            streams_failed=self._failed_total,
            stalled=bool(self._late),
            captures=self.catcher.started if self.catcher else 0,
            capturing=self.catcher.busy if self.catcher else False,
            done=done,
            requests=len(self.requests),
            request_timeouts=self._request_timeouts,
        )


def _handshake_timed_out(exc: BaseException) -> bool:
    """The TLS handshake ran out of time: asyncio's own handshake timeout, or ours."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return True
    return isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc).lower()


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel until every task has ended.

    On Python 3.10 and 3.11 `asyncio.wait_for` can swallow a cancellation that
    arrives as its inner call completes; a client that lost its cancellation
    is cancelled again rather than waited for.
    """
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


def _catcher(
    run: _Run, endpoint: Endpoint, pid: int | None, capture: bool
) -> tuple[Catcher | None, list[str]]:
    inject = run.config.inject
    if not capture:
        return None, ["catch-in-the-act is off (--no-capture)"]
    clock = run.now
    if pid is not None:
        process_info(pid)  # a PID that is not running is an error before the run, not after
        return Catcher([pid], clock=clock, inject=inject), []
    if not endpoint.is_local(run.address):
        return None, [
            f"catch-in-the-act is off: {endpoint.host} is not this machine; "
            "run the probe on the server's host, or pass --pid PID"
        ]
    pids, note = server_pids(endpoint.port)
    if not pids:
        return None, [note] if note else []
    return Catcher(pids, clock=clock, inject=inject), []


def _resource_watch(
    run: _Run, endpoint: Endpoint, pid: int | None, catcher: Catcher | None, notes: list[str]
) -> ResourceWatch | None:
    """A watch of the server's threads and fds: the capture's PIDs, --pid, or the port's owner."""
    if catcher is not None:
        return ResourceWatch(catcher.pids, run.now)
    if pid is not None:
        return ResourceWatch([pid], run.now)
    if endpoint.is_local(run.address):
        pids, _ = server_pids(endpoint.port)
        if pids:
            return ResourceWatch(pids, run.now)
    notes.append(
        "threads and open files of the server are not watched: no local process serving "
        "the URL was found; run the probe on the server's host, or pass --pid PID"
    )
    return None


async def _server_watch(
    run: _Run, endpoint: Endpoint
) -> tuple[ServerWatch | None, ServerView | None]:
    """The watch of the runtime's metrics, found with one bounded request before the run.

    By default `<url>/metrics` is tried and a server without the runtime gets a
    note; a path or URL the user named must serve the metrics, or nothing runs.
    """
    spec = run.config.server_metrics
    if spec == "off":
        return None, None
    target = metrics_target("/metrics" if spec == "auto" else spec, endpoint)
    pids = run.resources.pids if run.resources is not None else ()
    context = endpoint.ssl_context(insecure=run.config.insecure) if target.secure else None
    watch = ServerWatch(target, context, run.now, pids)
    problem = await watch.detect(min(run.config.health_timeout_s, 2.0))
    if problem is None:
        return watch, None
    if spec != "auto":
        raise ProbeError(
            f"--server-metrics: {problem}.",
            "Serve HangdoctorMetrics there (docs/runtime.md, Metrics), or pass off.",
        )
    note = (
        f"The server runs no hangdoctor runtime that the probe could read: {problem} "
        "(wrap the app in HangdoctorMiddleware with HangdoctorMetrics to see its own view)."
    )
    return None, ServerView(url=target.url, note=note)


async def _with_records(run: _Run, view: ServerView | None, started_at: float) -> ServerView | None:
    """The server's view with the records it wrote during the run, read one last time."""
    if run.records is None:
        return view
    await asyncio.to_thread(run.records.poll)  # what was written in the run's last moments
    return run.records.into(view, started_at)


async def run_probe(
    config: ProbeConfig,
    *,
    pid: int | None = None,
    capture: bool = True,
    on_progress: Callable[[ProbeProgress], None] | None = None,
) -> ProbeResult:
    """Probe the service `config` describes and return the timeline, summary and verdict.

    `pid` is the server to capture when a health request stalls (its workers
    included); by default the local process listening on the URL's port.
    `capture=False` turns catching in the act off. `on_progress` is called on
    the probe's event loop: it must return quickly. Raises `ProbeError` when
    the service cannot be probed.
    """
    endpoint, health_path, stream_paths, requests = _validate(config)
    if config.server_records is not None:
        # a stat and an open: off the loop, a file on a hung network disk included
        await asyncio.to_thread(check_records_file, config.server_records)
    config = replace(config, requests=requests)
    _ensure_fds(config.clients + len(requests) * MAX_REQUESTS_IN_FLIGHT + 64)
    run = _Run(config, endpoint, health_path, stream_paths, on_progress)
    await run.preflight()
    # reads a few /proc files once, before the run starts: not worth a thread
    catcher, notes = _catcher(run, endpoint, pid, capture)  # hangdoctor: ignore[HD205]
    run.resources = _resource_watch(run, endpoint, pid, catcher, notes)  # hangdoctor: ignore[HD205]
    run.server, server_view = await _server_watch(run, endpoint)
    if config.server_records is not None:
        run.records = RecordFollower(config.server_records)
        await asyncio.to_thread(run.records.start)  # where the file ends before the run
    if run.resources is not None:
        run.resources.sample("before", 0)  # hangdoctor: ignore[HD205]
    started_at, elapsed = await run.execute(catcher)
    await run.settle_resources()
    health = tuple(sorted(run.health, key=lambda h: h.t))
    streams = tuple(sorted(run.streams, key=lambda s: s.t_open))
    baseline = tuple(sorted(run.baseline, key=lambda h: h.t))
    summary, stalls, verdict = summarize(config, health, streams, baseline)
    resources = run.resources.report() if run.resources is not None else None
    if resources is not None and resources.growth:
        verdict = ProbeVerdict.FAIL  # a fix that trades the hang for a leak is no fix
    sent = with_stuck(config, tuple(sorted(run.requests, key=lambda r: r.t)), health)
    request_stats = summarize_requests(config, sent, health)
    if any(r.timeouts for r in request_stats):
        verdict = ProbeVerdict.FAIL  # a request past its deadline: hung, whatever health says
    shown = catcher.best() if catcher else None
    if shown is not None:
        # answers or events between its samples: many short calls, not one
        shown = with_health(shown, health, run.activity)
    if catcher is not None:
        notes.extend(catcher.notes())
    return ProbeResult(
        config=config,
        started_at=started_at,
        elapsed_s=elapsed,
        health=health,
        streams=streams,
        stalls=stalls,
        summary=summary,
        verdict=verdict,
        diagnosis=shown.diagnosis if shown else None,
        diagnosis_t=shown.t if shown else None,
        pid=catcher.pids[0] if catcher else pid,
        notes=tuple(notes),
        baseline=baseline,
        resources=resources,
        request_stats=request_stats,
        requests=sent,
        diagnosis_kind=shown.kind if shown else None,
        server_view=await _with_records(
            run, run.server.view() if run.server is not None else server_view, started_at
        ),
    )


def probe(
    config: ProbeConfig,
    *,
    pid: int | None = None,
    capture: bool = True,
    on_progress: Callable[[ProbeProgress], None] | None = None,
) -> ProbeResult:
    """`run_probe` on a fresh event loop, for callers without one."""
    return asyncio.run(run_probe(config, pid=pid, capture=capture, on_progress=on_progress))
