"""`HangdoctorMiddleware`: name the request a stall happened in; count open streams.

A pure ASGI middleware (never Starlette's `BaseHTTPMiddleware`, which buffers
and runs the app in another task): it keeps each request in a local the
watchdog finds on the stack of a stall (see `inflight`), and wraps `receive`
and `send` only to note when a response is an event stream and when the
client went away. Messages pass through untouched and unbuffered, so an SSE
stream reaches the client byte for byte, at the moment it is sent.

An optional debug endpoint lists the recent stalls and stuck requests. It is
off by default; on, it demands a bearer token (compared as bytes, in constant
time) and shows no locals, no query strings and no headers; records come with
secret-looking values in source lines already scrubbed (see `stall`, `stuck`).

At the lifespan shutdown it tells the watchdog the server is shutting down (so
what the shutdown waits for is reported, HD606) and stops it once the app's
own shutdown is complete.

With `otel=` (the `otel` extra) it keeps each request's OpenTelemetry span, so
that a stall or a stuck request is added to the trace of the request it
happened in (see `otel`); OpenTelemetry is imported only then.

Standard library only: this runs inside production services.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from hangdoctor.runtime import inflight
from hangdoctor.runtime.inflight import EVENT_STREAM_OPEN, Message, Receive, Send
from hangdoctor.runtime.inflight import InFlight as _InFlight
from hangdoctor.runtime.stall import recent_stalls
from hangdoctor.runtime.stuck import recent_stuck
from hangdoctor.runtime.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from hangdoctor.runtime.otel import HangdoctorOtel

__all__ = ["HangdoctorMiddleware", "StreamObserver"]

_monotonic = time.monotonic

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Default(enum.Enum):
    WATCHDOG = "the watchdog's own setting"


_WATCHDOGS_OWN = _Default.WATCHDOG
_SHUTDOWN_DONE = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})
# how long a request that stalled the loop waits, once the app has returned, for the
# stall to be reported into its span (a report takes a few ms; never hang a request on it)
_SPAN_HOLD_MAX_S = 1.0


class StreamObserver(Protocol):
    """Told when an event-stream response opens and closes (the metrics implement it)."""

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...


class HangdoctorMiddleware:
    """Track in-flight requests and open streams for the loop watchdog's stall records.

    `app = HangdoctorMiddleware(app, watchdog=LoopWatchdog(0.25))`, or with
    Starlette/FastAPI `app.add_middleware(HangdoctorMiddleware, watchdog=...)`.
    Given a `watchdog`, the middleware starts it in each worker when the
    server starts the app (the lifespan startup event, or the first request
    when lifespan is off) and stops it at shutdown. An `observer` (such as
    `HangdoctorMetrics`) hears about streams and, if it has `watch()`, is
    attached to the watchdog. `debug_path` (e.g. "/_hangdoctor/stalls") turns
    the debug endpoint on and then needs `debug_token`. `stuck_after` (seconds,
    None: off) is passed to the watchdog it starts; by default the watchdog
    keeps its own (30 s unless it was made with another). `otel=True` (or a
    `hangdoctor.runtime.otel.HangdoctorOtel`) sends stalls and stuck requests to
    OpenTelemetry, as span events on the request's current span, log records and
    metrics (the `otel` extra).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = "x-request-id",
        debug_path: str | None = None,
        debug_token: str | None = None,
        observer: StreamObserver | None = None,
        watchdog: LoopWatchdog | None = None,
        stuck_after: float | _Default | None = _WATCHDOGS_OWN,
        otel: bool | HangdoctorOtel = False,
    ) -> None:
        if watchdog is not None and stuck_after is not _WATCHDOGS_OWN:
            watchdog.set_stuck_after(stuck_after)  # checked here: a bad value fails at once
        if debug_path is not None and not debug_token:
            raise ValueError(
                "HangdoctorMiddleware: debug_path needs debug_token; the stall list is never "
                "served without a token."
            )
        if debug_path is not None and not debug_path.startswith("/"):
            raise ValueError(
                f"HangdoctorMiddleware: debug_path must start with '/': {debug_path!r}"
            )
        if debug_token is not None and not _is_header_token(debug_token):
            raise ValueError(
                "HangdoctorMiddleware: debug_token must be printable ASCII without spaces "
                "(an HTTP header carries bytes, so any other token could never match); "
                "use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        self.app = app
        self.request_id_header = request_id_header.lower().encode("latin-1")
        self.debug_path = debug_path
        self._token = (debug_token or "").encode("ascii")
        self.observer = observer
        self.watchdog = watchdog
        self.otel: HangdoctorOtel | None = None
        self._span_of: Callable[[], Any] | None = None  # the request's span (OTel on)
        if otel is not False:
            try:
                from hangdoctor.runtime import otel as otel_module
            except ImportError as exc:
                raise ImportError(
                    "HangdoctorMiddleware(otel=...) needs OpenTelemetry: install "
                    "hangdoctor-runtime with its `otel` extra (`pip install "
                    "'/path/to/hangdoctor/packaging/hangdoctor-runtime[otel]'` from a "
                    "checkout) or `pip install opentelemetry-sdk`"
                ) from exc

            self.otel = otel_module.HangdoctorOtel() if otel is True else otel
            self._span_of = otel_module.current_span
        self._watching = False
        # anything to do before a request is served: start the watchdog, the debug page
        self._pending = watchdog is not None or debug_path is not None
        self.open_streams = 0
        self.disconnects = 0
        inflight.mark_seen()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # every request passes here: a handful of operations, no avoidable calls
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.watchdog is not None:
                await self._lifespan(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if self._pending:
            if self.watchdog is not None and not self._watching:
                self._start_watching()  # a server run without lifespan events
            if self.debug_path is not None and scope["path"] == self.debug_path:
                await self._debug(scope, send)
                return
        # `req`: the watchdog finds the request of a stall in this local (see inflight);
        # filled here, as an __init__ call would cost more than all the rest
        req = _InFlight()
        req.scope = scope
        req.server_receive = receive
        req.server_send = send
        req.events = self
        req.started = _monotonic()
        req.response = None
        req.disconnected = req.ended = False
        req.gone_at = None
        if self._span_of is not None:
            req.span = self._span_of()
            req.span_hold = None
        try:
            await self.app(scope, req.receive, req.send)
        finally:
            req.ended = True
            if req.response is EVENT_STREAM_OPEN:
                self._stream_closed()
            if self._span_of is not None and req.span_hold is not None:
                await _span_reported(req.span_hold)

    def _stream_opened(self) -> None:
        self.open_streams += 1
        if self.observer is not None:
            self.observer.stream_opened()

    def _stream_closed(self) -> None:
        self.open_streams -= 1
        if self.observer is not None:
            self.observer.stream_closed()

    def _client_gone(self) -> None:
        self.disconnects += 1

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the watchdog at startup; at shutdown, watch the shutdown, then stop it."""

        async def wrapped_receive() -> Message:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                self._start_watching()
            elif kind == "lifespan.shutdown" and self.watchdog is not None and self._watching:
                self.watchdog.shutdown_started("the lifespan shutdown")
            return message

        async def wrapped_send(message: Message) -> None:
            if message.get("type") in _SHUTDOWN_DONE:
                await self._stop_watching()  # the app's own shutdown is over
            await send(message)

        try:
            await self.app(scope, wrapped_receive, wrapped_send)
        finally:
            await self._stop_watching()

    async def _stop_watching(self) -> None:
        if self.watchdog is not None and self._watching:
            self._watching = False
            self._pending = True
            await self.watchdog.aclose()

    def _start_watching(self) -> None:
        """Start the watchdog on this worker's loop: after a fork, in the worker, not the master."""
        dog = self.watchdog
        if dog is not None and not self._watching and not dog.running:
            dog.start()
            watch = getattr(self.observer, "watch", None)
            if callable(watch):
                watch(dog)
            if self.otel is not None:
                self.otel.watch(dog)
        self._watching = True
        self._pending = self.debug_path is not None

    async def _debug(self, scope: Scope, send: Send) -> None:
        given = _header_bytes(scope, b"authorization") or b""
        scheme, _, value = given.partition(b" ")
        # bytes against bytes: the header as the client sent it, the token as ASCII
        ok = scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self._token)
        if not ok:
            await _json(send, 401, {"error": "a bearer token is required"}, bearer=True)
            return
        stalls = [r.to_dict() for r in recent_stalls()]
        stuck = [r.to_dict() for r in recent_stuck()]
        in_flight = inflight.in_flight(asyncio.get_running_loop())
        await _json(send, 200, {"stalls": stalls, "stuck": stuck, "in_flight": in_flight})


async def _span_reported(hold: concurrent.futures.Future[None]) -> None:
    """Wait (bounded) until the watchdog has reported the stall of this request."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.wrap_future(hold), _SPAN_HOLD_MAX_S)


def _is_header_token(token: str) -> bool:
    """Whether `token` can arrive intact in `Authorization: Bearer <token>`."""
    return bool(token) and all("!" <= c <= "~" for c in token)


def _header_bytes(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value)
    return None


async def _json(send: Send, status: int, body: dict[str, Any], *, bearer: bool = False) -> None:
    payload = json.dumps(body, default=str).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="hangdoctor"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# the watchdog finds a stalled request in the `req` local of this method's frames
inflight.register_owner(HangdoctorMiddleware.__call__.__code__)
