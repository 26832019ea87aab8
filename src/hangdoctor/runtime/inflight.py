"""The request a stalled loop was serving, found from its stack when a stall happens.

Every request passes through the middleware, so what it does per request is
cut to the bone (issue 5 allows the runtime 1% of a hello-world's
throughput; see bench/runtime.py for how that is measured): one `InFlight`
object filled without an `__init__` call, and a `send` that is a plain
function handing each message straight to the server's own send (no extra
coroutine per message). No registry, no counter, no context variable: those
cost more than all the rest.

The watchdog finds the request from the loop thread's stack instead, once
per stall: the middleware's own frame holds it (`req`) when the stall is in
the request's task; a child task (a streaming response sends its body from
one) holds the `send` or `receive` the middleware gave the app, which leads
back to it. Requests in flight are counted the same way, from the loop's
suspended tasks, when asked.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from types import CodeType, FrameType, FunctionType, MethodType
from typing import Any, Protocol

from hangdoctor.runtime.stall import RequestInfo

__all__ = [
    "InFlight",
    "StreamEvents",
    "find_request",
    "in_flight",
    "mark_seen",
    "register_owner",
    "span_of",
]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_EVENT_STREAM = b"text/event-stream"
_CONTENT_TYPE = b"content-type"
_DISCONNECT = "http.disconnect"

_OWNER_CODES: set[CodeType] = set()  # code objects whose frames hold a request in `req`
_REQUEST_LOCAL = "req"
_MAX_FRAMES = 256  # frames of one stack, coroutines of one await chain
_MAX_DEPTH = 6  # wrappers between a child task's locals and the middleware's send
_MAX_OBJECTS = 4096  # objects looked at per stall
_SEEN = [False]  # set when a middleware exists: 0 in flight is then a fact, not unknown


class StreamEvents(Protocol):
    """Who the request belongs to (the middleware): told when a stream opens or closes."""

    request_id_header: bytes

    def _stream_opened(self) -> None: ...

    def _stream_closed(self) -> None: ...

    def _client_gone(self) -> None: ...


# InFlight.response after the response start: what the first body part showed
EVENT_STREAM_OPEN: Message = {"type": "hangdoctor: an event stream"}
OTHER_RESPONSE: Message = {"type": "hangdoctor: not an event stream"}


class InFlight:
    """A request being served, and the `receive`/`send` the app gets for it.

    The middleware makes it with `InFlight()` and sets every field itself (an
    `__init__` call would cost more than all of that); when the app returns, it
    sets `ended`, so a task the request left running, still holding its `send`,
    is not reported as serving it.
    """

    __slots__ = (
        "disconnected",
        "ended",
        "events",
        "gone_at",
        "response",
        "scope",
        "server_receive",
        "server_send",
        "span",
        "span_hold",
        "started",
    )

    scope: MutableMapping[str, Any]
    started: float  # time.monotonic() when the middleware saw the request
    server_receive: Receive
    server_send: Send
    events: StreamEvents
    # None, then the response start (kept unread), then one of the two markers above
    response: Message | None
    disconnected: bool
    gone_at: float | None  # time.monotonic() when the middleware saw the client go
    ended: bool
    # set only with OpenTelemetry on (see `otel`): the request's span, and what keeps it
    # open while a stall of the request is being reported
    span: Any
    span_hold: concurrent.futures.Future[None] | None

    @property
    def streaming(self) -> bool:
        """The response is an event stream (known once its start was sent)."""
        response = self.response
        if response is EVENT_STREAM_OPEN:
            return True
        return (
            response is not None and response is not OTHER_RESPONSE and _is_event_stream(response)
        )

    async def receive(self) -> Message:
        message = await self.server_receive()
        if message["type"] == _DISCONNECT and not self.disconnected:
            self._gone()
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: each message goes straight to the server's own send, and a
        # plain response costs a few comparisons. The response start is kept, not read:
        # only a body part with more to come (a stream) makes its headers worth reading.
        response = self.response
        if response is None:
            self.response = message  # ASGI: the response start is the first message
        elif response is EVENT_STREAM_OPEN:
            return self._send_streamed(message)
        elif response is not OTHER_RESPONSE and message.get("more_body"):
            if _is_event_stream(response):
                self.response = EVENT_STREAM_OPEN
                self.events._stream_opened()
                return self._send_streamed(message)
            self.response = OTHER_RESPONSE
        return self.server_send(message)

    async def _send_streamed(self, message: Message) -> None:
        try:
            await self.server_send(message)
        except OSError:
            if not self.disconnected:  # the client went away mid-stream
                self._gone()
            raise
        # uvicorn drops a write to a client that left without a word: a generator that
        # never reads `receive` streams on for ever. Its flag says so (one getattr per
        # event sent, on streams only), and from then on the stream is HD605.
        if not self.disconnected and _server_saw_disconnect(self.server_send):
            self._gone()

    def _gone(self) -> None:
        self.disconnected = True
        self.gone_at = time.monotonic()
        self.events._client_gone()

    def info(self, at: float | None = None) -> RequestInfo:
        scope = self.scope
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        request_id = None
        for key, value in scope.get("headers") or ():
            if bytes(key).lower() == self.events.request_id_header:
                request_id = bytes(value).decode("latin-1")
                break
        info = RequestInfo(
            method=str(scope.get("method", "GET")),
            path=str(scope.get("path", "")),
            route=template if isinstance(template, str) else None,
            request_id=request_id,
            streaming=self.streaming,
            disconnected=self.disconnected or _server_saw_disconnect(self.server_send),
            age_s=None if at is None else round(max(0.0, at - self.started), 3),
            disconnected_s=(
                None
                if at is None or self.gone_at is None
                else round(max(0.0, at - self.gone_at), 3)
            ),
        )
        span = getattr(self, "span", None)
        if span is not None:
            _keep_span(info, span)
        return info

    def hold_span(self) -> concurrent.futures.Future[None] | None:
        """Keep the request's span open until the stall being captured is reported.

        Called on the watchdog's thread while the loop is blocked, so the request
        cannot have ended yet; without this the request would usually finish, and
        its span end, before the record is made, and the stall's span event would
        be dropped. The middleware waits for the result (bounded) after the app
        returns. None when the request has no span (OpenTelemetry off).
        """
        if getattr(self, "span", None) is None:
            return None
        hold: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.span_hold = hold
        return hold


# RequestInfo (a frozen dataclass of the model) -> the span of its request, by identity:
# records carry the RequestInfo, never the span (they are serialised and kept)
_SPANS: dict[int, tuple[weakref.ref[RequestInfo], Any]] = {}


def _keep_span(info: RequestInfo, span: Any) -> None:
    key = id(info)
    ref = weakref.ref(info, lambda _gone: _SPANS.pop(key, None))
    _SPANS[key] = (ref, span)


def span_of(info: RequestInfo | None) -> Any:
    """The OpenTelemetry span of the request `info` describes, if the middleware kept one."""
    if info is None:
        return None
    entry = _SPANS.get(id(info))
    if entry is None or entry[0]() is not info:
        return None
    return entry[1]


def _server_saw_disconnect(send: Send) -> bool:
    """Whether the server knows the client left, though the app never asked.

    An app that streams without reading `receive` learns nothing: uvicorn drops what it
    sends after a disconnect without an error. Its per-request cycle (the `send` it hands
    out is a bound method of it) keeps a `disconnected` flag; read only when a report is
    made, never per request.
    """
    return getattr(getattr(send, "__self__", None), "disconnected", None) is True


def _is_event_stream(start: Message) -> bool:
    for key, value in start.get("headers") or ():
        if key == _CONTENT_TYPE:  # ASGI: response header names are lowercase
            return bytes(value[:17]).lower() == _EVENT_STREAM
    return False


def register_owner(code: CodeType) -> None:
    """`code` (the middleware's `__call__`) keeps its request in a local named `req`."""
    _OWNER_CODES.add(code)


def find_request(frame: FrameType | None) -> InFlight | None:
    """The request the code running in `frame` (and the frames under it) serves, if known."""
    frames: list[FrameType] = []
    while frame is not None and len(frames) < _MAX_FRAMES:
        frames.append(frame)
        frame = frame.f_back
    for each in frames:  # innermost first: the request of the task that stalled
        if each.f_code in _OWNER_CODES:
            req = _locals(each).get(_REQUEST_LOCAL)
            if isinstance(req, InFlight) and not req.ended:
                return req
    # a child task of the request: it holds the send/receive the middleware handed out
    budget = [_MAX_OBJECTS]
    for each in frames:
        req = _search(list(_locals(each).values()), budget)
        if req is not None:
            return req
    return None


def _locals(frame: FrameType) -> dict[str, Any]:
    # Python 3.13+ gives a read-only view; 3.10-3.12 copy the fast locals into a
    # dict, which is safe under the GIL even for another thread's running frame.
    try:
        return dict(frame.f_locals)
    except Exception:  # a frame torn down while being read
        return {}


def _search(start: list[Any], budget: list[int]) -> InFlight | None:
    """Breadth-first through what wrappers of `send` hold: closures, bound methods, partials."""
    level = start
    for _ in range(_MAX_DEPTH):
        following: list[Any] = []
        for value in level:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            if isinstance(value, InFlight):
                if not value.ended:
                    return value
                continue
            if isinstance(value, MethodType):
                following.append(value.__self__)
            elif isinstance(value, FunctionType):
                for cell in value.__closure__ or ():
                    try:
                        following.append(cell.cell_contents)
                    except ValueError:  # an empty cell
                        continue
            elif isinstance(value, functools.partial):
                following.append(value.func)
                following.extend(value.args)
        if not following:
            return None
        level = following
    return None


def in_flight(loop: asyncio.AbstractEventLoop, running: InFlight | None = None) -> int | None:
    """Requests in flight on `loop` (None when no middleware exists in this process).

    Counted when asked (a stall, the debug page), from the chain of coroutines
    each suspended task is awaiting, plus `running`: the request `find_request`
    found on the running task's stack, whose chain cannot be read while it runs.
    """
    if not _SEEN[0]:
        return None
    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:  # the task set kept changing under another thread
        return None
    found: set[int] = set() if running is None else {id(running)}
    for task in tasks:
        req = _request_of_suspended(task)
        if req is not None:
            found.add(id(req))
    return len(found)


def _request_of_suspended(task: asyncio.Task[Any]) -> InFlight | None:
    try:
        awaited: Any = task.get_coro()
    except Exception:
        return None
    for _ in range(_MAX_FRAMES):
        code = getattr(awaited, "cr_code", None)
        if code is None:
            return None
        if code in _OWNER_CODES:
            frame = getattr(awaited, "cr_frame", None)
            req = None if frame is None else _locals(frame).get(_REQUEST_LOCAL)
            return req if isinstance(req, InFlight) and not req.ended else None
        awaited = getattr(awaited, "cr_await", None)
    return None


def mark_seen() -> None:
    _SEEN[0] = True
