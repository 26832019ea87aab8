"""The server's own view during a probe: what the hangdoctor runtime inside it saw.

A probe times the server from outside; a server that runs the runtime's
metrics (`HangdoctorMetrics`, served on `/metrics`, see docs/runtime.md) also
knows, from inside, how late its loop ran, which stalls it saw and by which
catalog code, the requests stuck on a healthy loop, its AnyIO threads and its
open streams. `ServerWatch` scrapes that endpoint every `SCRAPE_EVERY_S` on
connections of its own, one scrape at a time, each with a deadline, from the
probe's event loop: the health clock runs in its own process, so the scrapes
never delay a health measurement. Threads and RSS come from /proc when the
server's PIDs are known (the probe runs on its host), else RSS from the
process metrics prometheus_client exports.

A scrape that gets no answer within its deadline is kept as a miss: the
metrics are served by the same loop, so a miss is itself the loop not running.

Counters are cumulative; a stall is seen at the scrape where the stall counter
rose. That scrape is answered only once the loop runs again, so the stall
began earlier: by the lag the loop's late heartbeat reported, which the
histogram counts at that scrape or one of the next few.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.target import Endpoint

__all__ = [
    "SCRAPE_EVERY_S",
    "MetricsTarget",
    "ServerEvent",
    "ServerRecord",
    "ServerSample",
    "ServerView",
    "ServerWatch",
    "metrics_target",
    "parse_metrics",
]

SCRAPE_EVERY_S = 0.25
SCRAPE_TIMEOUT_S = 2.0  # a scrape is served by the server's loop: a stall delays it
MAX_BODY = 4 * 1024 * 1024
_LAG_LOOKAHEAD_S = 1.5  # how far after a stall is counted its late heartbeat is looked for
_MARKER = "hangdoctor_loop_lag_seconds_count"  # the runtime's metrics are served here
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ServerSample:
    """One answered scrape, on the probe's time axis (t: when the answer came)."""

    t: float
    lag_mean_s: float | None  # mean loop lag of the heartbeats since the previous scrape
    # the slowest of those heartbeats, as the upper bound of its histogram bucket
    lag_max_s: float | None
    lag_sum_s: float  # cumulative sum of the lag (the histogram's _sum)
    heartbeats: int  # cumulative count of heartbeats (the histogram's _count)
    stalls: dict[str, int]  # cumulative stalls by catalog code
    stuck: dict[str, int]  # cumulative stuck-request episodes by catalog code
    threads_busy: float | None  # AnyIO worker threads in use
    threads_limit: float | None
    open_streams: float | None
    threads: int | None  # OS threads of the server (/proc)
    rss_bytes: int | None  # resident memory (/proc, else process_resident_memory_bytes)


@dataclass(frozen=True)
class ServerEvent:
    """A stall or a stuck-request episode the server itself reported."""

    kind: str  # "stall" or "stuck"
    code: str  # catalog code, e.g. HD101
    t: float  # the first scrape that counted it
    t_start: float  # when it began, estimated (see the module docstring)
    count: int  # how many the counter rose by at that scrape


@dataclass(frozen=True)
class ServerRecord:
    """A stall or stuck-request record the server's runtime wrote (`watch --out`), placed exactly.

    Kept apart from `ServerEvent`: an event is a counter's rise, placed by estimate and
    without a line; a record carries the runtime's own wall-clock moment, the user's
    file:line and the request, so it is drawn and read as exact (see server_records.py).
    """

    kind: str  # "stall" or "stuck"
    code: str  # catalog code, e.g. HD201
    name: str  # the catalog entry's name
    t: float  # on the probe's axis: when a stall began (`started_at`), or a stuck one was seen
    blocked_for_s: float | None  # a stall: how long the loop did not run
    waiting_s: float | None  # a stuck episode: how long the task's await had not moved
    file: str
    line: int
    function: str
    request: str | None  # "METHOD /route" it served, with the middleware
    waits_on: str | None  # what the loop (a stall) or the task (stuck) waited on
    task: str | None  # a stuck episode: the waiting task's name
    pid: int
    message: str  # one sentence, as `diagnose` words it

    @property
    def t_end(self) -> float:
        return self.t + (self.blocked_for_s or 0.0) if self.kind == "stall" else self.t


@dataclass(frozen=True)
class ServerView:
    """What the server's runtime reported during the run, or why there is nothing.

    Two sources, either or both: its metrics (`url`, `samples`, `events`, `missed`; url
    None when they were not read) and the records it appended to a file
    (`records_file`, `records`; see server_records.py).
    """

    url: str | None
    samples: tuple[ServerSample, ...] = ()
    events: tuple[ServerEvent, ...] = ()
    missed: tuple[float, ...] = ()  # scrapes sent at these times got no answer in time
    note: str | None = None  # one sentence when the server has no runtime to read
    records_file: str | None = None  # --server-records: the JSON Lines file followed
    records: tuple[ServerRecord, ...] = ()  # what it gained during the run, by time
    records_skipped: int = 0  # lines of it that were not stall or stuck records
    records_note: str | None = None  # one sentence on those lines, or on the file itself

    @property
    def available(self) -> bool:
        """The metrics were read: there is a time series to draw."""
        return bool(self.samples)


@dataclass(frozen=True)
class MetricsTarget:
    """Where the metrics are: host, port, TLS, path."""

    url: str
    host: str
    port: int
    secure: bool
    path: str


def metrics_target(spec: str, endpoint: Endpoint) -> MetricsTarget:
    """`--server-metrics`: a path on the probed server, or a full http(s) URL."""
    if spec.startswith("/"):
        return MetricsTarget(
            endpoint.base_url + spec, endpoint.host, endpoint.port, endpoint.secure, spec
        )
    parts = urlsplit(spec)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(
            f"--server-metrics {spec!r} is neither a path nor an http(s) URL.",
            "Pass a path such as /metrics, a URL such as http://127.0.0.1:9100/metrics, or off.",
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ProbeError(
            f"--server-metrics {spec!r} has a port that is not a number.",
            "Pass a URL such as http://127.0.0.1:9100/metrics.",
        ) from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return MetricsTarget(spec, parts.hostname, port, parts.scheme == "https", path)


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition: name -> [(labels, value)]; comments and junk skipped."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            continue
        found = dict(_LABEL.findall(labels)) if labels else {}
        out.setdefault(name, []).append((found, value))
    return out


def _total(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float | None:
    values = metrics.get(name)
    return sum(v for _, v in values) if values else None


def _by_code(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for labels, value in metrics.get(name, []):
        code = labels.get("code", "?")
        counts[code] = counts.get(code, 0) + int(value)
    return {c: n for c, n in sorted(counts.items()) if n}


def _proc_status(pids: Sequence[int]) -> tuple[int | None, int | None]:
    """(threads, RSS bytes) summed over `pids` from /proc/PID/status; None where unreadable."""
    threads: list[int] = []
    rss: list[int] = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="latin-1") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Threads":
                threads.append(int(value.split()[0]))
            elif key == "VmRSS":
                rss.append(int(value.split()[0]) * 1024)
    return (sum(threads) if threads else None, sum(rss) if rss else None)


async def fetch_metrics(
    target: MetricsTarget, ssl_context: ssl.SSLContext | None, timeout: float
) -> tuple[int, str]:
    """GET the metrics on a new connection within `timeout`: (status, body).

    Raises OSError, ssl.SSLError, ValueError (not HTTP) or asyncio.TimeoutError.
    """
    return await asyncio.wait_for(_fetch(target, ssl_context), timeout)


async def _fetch(target: MetricsTarget, ssl_context: ssl.SSLContext | None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(
        target.host,
        target.port,
        ssl=ssl_context if target.secure else None,
        server_hostname=target.host if target.secure else None,
    )
    try:
        request = (
            f"GET {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            "Accept: text/plain\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        raw = await reader.read(MAX_BODY)
        data = raw
        while raw and len(data) < MAX_BODY:
            raw = await reader.read(MAX_BODY - len(data))
            data += raw
    finally:
        writer.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError("not an HTTP response")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    status = int(status_line[1])
    if 300 <= status < 400:
        # the redirect's target, as the body: Starlette's Mount sends /metrics to /metrics/
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "location":
                return status, value.strip()
    return status, body.decode("utf-8", "replace")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


class ServerWatch:
    """Scrapes the runtime's metrics during a run and keeps the time series."""

    def __init__(
        self,
        target: MetricsTarget,
        ssl_context: ssl.SSLContext | None,
        clock: Callable[[], float],
        pids: Sequence[int] = (),
    ) -> None:
        self.target = target
        self._ssl = ssl_context
        self._clock = clock
        self.pids = tuple(pids)
        self._samples: list[ServerSample] = []
        self._missed: list[float] = []
        self._prev: tuple[float, int] | None = None  # (lag sum, heartbeats) at the last scrape
        self._prev_buckets: dict[float, float] = {}

    async def detect(self, timeout: float) -> str | None:
        """One bounded scrape before the run: None when the runtime's metrics are there,
        else the sentence saying why not."""
        where = self.target.url
        deadline = time.monotonic() + timeout
        try:
            status, body = await fetch_metrics(self.target, self._ssl, timeout)
            moved = urlsplit(body)
            here = moved.port == self.target.port and moved.hostname == self.target.host
            if 300 <= status < 400 and moved.path.startswith("/") and (not moved.netloc or here):
                # a redirect on the same server (a mounted app adds the slash): follow it once
                path = moved.path + (f"?{moved.query}" if moved.query else "")
                self.target = replace(
                    self.target,
                    url=self.target.url.removesuffix(self.target.path) + path,
                    path=path,
                )
                left = max(0.05, deadline - time.monotonic())
                status, body = await fetch_metrics(self.target, self._ssl, left)
        except (OSError, ssl.SSLError, ValueError, asyncio.TimeoutError) as exc:
            what = "no answer in time" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            return f"{where} could not be read ({what})"
        if status != 200:
            return f"{where} answered HTTP {status}"
        if _MARKER not in body:
            return f"{where} serves no hangdoctor metrics"
        return None

    async def scrape(self) -> None:
        """One scrape; a miss is kept, never raised: the run goes on without it."""
        sent = self._clock()
        try:
            status, body = await fetch_metrics(self.target, self._ssl, SCRAPE_TIMEOUT_S)
        except (OSError, ssl.SSLError, ValueError, asyncio.TimeoutError):
            self._missed.append(sent)
            return
        if status != 200:
            self._missed.append(sent)
            return
        # reads /proc/PID/status of the server (a few small kernel files): not worth a thread
        self._add(self._clock(), parse_metrics(body))  # hangdoctor: ignore[HD205]

    def _add(self, t: float, metrics: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        lag_sum = _total(metrics, "hangdoctor_loop_lag_seconds_sum") or 0.0
        beats = int(_total(metrics, "hangdoctor_loop_lag_seconds_count") or 0)
        buckets: dict[float, float] = {}
        for labels, value in metrics.get("hangdoctor_loop_lag_seconds_bucket", []):
            with contextlib.suppress(KeyError, ValueError):
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value
        mean = slowest = None
        if self._prev is not None and beats > self._prev[1]:
            new = beats - self._prev[1]
            mean = (lag_sum - self._prev[0]) / new
            # the first bucket that holds every new heartbeat bounds the slowest of them
            slowest = next(
                (
                    le
                    for le in sorted(buckets)
                    if buckets[le] - self._prev_buckets.get(le, 0.0) >= new
                ),
                None,
            )
            if slowest is not None and math.isinf(slowest):
                slowest = max((b for b in buckets if not math.isinf(b)), default=None)
        self._prev = (lag_sum, beats)
        self._prev_buckets = buckets
        threads, rss = _proc_status(self.pids) if self.pids else (None, None)
        if rss is None:
            exported = _total(metrics, "process_resident_memory_bytes")
            rss = int(exported) if exported is not None else None
        self._samples.append(
            ServerSample(
                t=t,
                lag_mean_s=mean,
                lag_max_s=slowest,
                lag_sum_s=lag_sum,
                heartbeats=beats,
                stalls=_by_code(metrics, "hangdoctor_stalls_total"),
                stuck=_by_code(metrics, "hangdoctor_stuck_total"),
                threads_busy=_total(metrics, "hangdoctor_anyio_worker_threads_busy"),
                threads_limit=_total(metrics, "hangdoctor_anyio_worker_threads_limit"),
                open_streams=_total(metrics, "hangdoctor_open_streams"),
                threads=threads,
                rss_bytes=rss,
            )
        )

    async def run(self, running: Callable[[], bool]) -> None:
        """Scrape every SCRAPE_EVERY_S while `running()`; one scrape in flight at a time."""
        while running():
            started = time.monotonic()
            await self.scrape()
            await asyncio.sleep(max(0.0, SCRAPE_EVERY_S - (time.monotonic() - started)))

    def view(self) -> ServerView:
        samples = tuple(self._samples)
        return ServerView(
            url=self.target.url,
            samples=samples,
            events=events(samples),
            missed=tuple(self._missed),
        )


def events(samples: Sequence[ServerSample]) -> tuple[ServerEvent, ...]:
    """Where the stall and stuck counters rose, by code (see the module docstring)."""
    out: list[ServerEvent] = []
    for i in range(1, len(samples)):
        prev, cur = samples[i - 1], samples[i]
        # the late heartbeat is counted once the loop runs again: by this scrape or one
        # of the next few (the counter and the histogram are not updated together)
        lag = max(
            samples[j].lag_sum_s - samples[j - 1].lag_sum_s
            for j in range(i, len(samples))
            if samples[j].t <= cur.t + _LAG_LOOKAHEAD_S or j == i
        )
        for kind, now, before in (
            ("stall", cur.stalls, prev.stalls),
            ("stuck", cur.stuck, prev.stuck),
        ):
            for code, n in now.items():
                rise = n - before.get(code, 0)
                if rise > 0:
                    start = max(0.0, cur.t - lag) if kind == "stall" else cur.t
                    out.append(ServerEvent(kind, code, cur.t, start, rise))
    return tuple(out)
