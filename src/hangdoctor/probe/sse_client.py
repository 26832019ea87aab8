"""HTTP/1.1 requests and SSE streams on asyncio protocols, standard library only.

Hundreds of stream clients and a health timer share one event loop, so each
connection is a plain `asyncio.Protocol`: bytes are parsed as they arrive,
with no task per read, which keeps the loop free to start health requests on
time. One `Exchange` is one request on one connection (`Connection: close`),
the way a client that drops a stream opens the next one.

Why not an HTTP client library: the probe's findings are timings, and its
abuse of streams is the reproduction. httpx and aiohttp read through their
own buffers, connection pools and tasks, so the moment a byte arrived (the
first SSE event, the end of a health response) is no longer the moment the
probe sees it; and neither offers, short of reaching into its internals, to
close one connection with an RST at a chosen moment (SO_LINGER 0 on the raw
socket: `Exchange.close(reset=True)`) rather than a FIN, as a crashed client
or a proxy drops a stream.

h11 (sans-IO, so it would keep both: bytes are still fed from
`data_received`, and the socket stays ours) could replace `_parse_head` and
`_Chunked`. It is not used because it would be a new dependency of the base
install (it comes only with the demo extra's uvicorn and httpx) for some sixty
lines of parsing that the tests cover; it is a possible later change.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from hangdoctor import __version__

__all__ = [
    "Exchange",
    "ResponseHead",
    "SSECounter",
    "build_request",
    "open_exchange",
]

_MAX_HEAD = 64 * 1024
_USER_AGENT = f"hangdoctor-probe/{__version__}"
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


@dataclass(frozen=True)
class ResponseHead:
    """The status line and headers of a response (header names lowercased)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        key = name.lower()
        values = [v for k, v in self.headers if k == key]
        return ", ".join(values) if values else None

    @property
    def content_type(self) -> str:
        return (self.get("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def is_event_stream(self) -> bool:
        return self.content_type == "text/event-stream"


def build_request(
    method: str,
    path: str,
    host_header: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    accept: str = "*/*",
) -> bytes:
    """The bytes of one HTTP/1.1 request that asks the server to close afterwards."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {_USER_AGENT}"]
    given = {k.lower() for k, _ in headers}
    if "accept" not in given:
        lines.append(f"Accept: {accept}")
    if accept == "text/event-stream" and "cache-control" not in given:
        lines.append("Cache-Control: no-cache")
    lines.extend(f"{k}: {v}" for k, v in headers if k.lower() not in ("host", "connection"))
    if body is not None:
        if "content-type" not in given:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class _Chunked:
    """Incremental decoder of `Transfer-Encoding: chunked`."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is due
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data
        out: list[bytes] = []
        while buf and not self.done:
            if self._left:
                take = buf[: self._left]
                out.append(take)
                self._left -= len(take)
                buf = buf[len(take) :]
                if not self._left:
                    self._crlf = True
                continue
            if self._crlf:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ValueError("malformed chunked body")
                buf = buf[2:]
                self._crlf = False
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise ValueError("chunk size line too long")
                break
            size = int(buf[:end].split(b";", 1)[0].strip() or b"0", 16)
            buf = buf[end + 2 :]
            if size == 0:
                self.done = True  # trailers, if any, are not needed
            else:
                self._left = size
        self._buf = buf
        return b"".join(out)


class SSECounter:
    """Counts complete server-sent events (a block of fields ended by a blank line)."""

    def __init__(self) -> None:
        self._partial = b""
        self._fields = False  # the current block has a field: a blank line dispatches it
        self.events = 0

    def feed(self, data: bytes) -> int:
        """Consume decoded body bytes; the number of events they completed."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        before = self.events
        for line in lines:
            if line in (b"", b"\r"):
                if self._fields:
                    self.events += 1
                    self._fields = False
            elif not line.startswith(b":"):  # a comment line dispatches nothing
                self._fields = True
        return self.events - before


class Exchange(asyncio.Protocol):
    """One request on one connection: sends it, parses the head, reads or counts the body.

    `head` resolves when the status line and headers are in; `done` when the
    body is complete or the connection ends. Times are `time.monotonic()`.
    """

    def __init__(
        self,
        request: bytes,
        *,
        count_events: bool,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[ResponseHead] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self._request = request
        self._count = count_events
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._chunked: _Chunked | None = None
        self._length: int | None = None  # body bytes still to come, when Content-Length says
        self._sse = SSECounter() if count_events else None
        self.first_event_at: float | None = None
        self._on_event = on_event  # told of each chunk that completed an event
        self.closed = False  # closed by us (an abort, or the end of the request)

    @property
    def events(self) -> int:
        return self._sse.events if self._sse else 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.head.done():
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    self._fail(ValueError("response headers larger than 64 KiB"))
                return
            raw, rest = self._buf[:end], self._buf[end + 4 :]
            self._buf = b""
            try:
                head = _parse_head(raw)
            except ValueError as exc:
                self._fail(exc)
                return
            if 100 <= head.status < 200:  # an interim response: the real one follows
                self.data_received(rest)
                return
            self._start_body(head)
            self.head.set_result(head)
            data = rest
        if data and not self.done.done():
            self._body(data)

    def _start_body(self, head: ResponseHead) -> None:
        if "chunked" in (head.get("transfer-encoding") or "").lower():
            self._chunked = _Chunked()
        elif head.status in (204, 304):
            self._length = 0
        elif (length := head.get("content-length")) is not None:
            try:
                self._length = int(length.split(",")[0])
            except ValueError:
                self._length = None
        if self._length == 0:
            self._finish()

    def _body(self, data: bytes) -> None:
        if self._chunked is not None:
            try:
                payload = self._chunked.feed(data)
            except ValueError as exc:
                self._fail(exc)
                return
        else:
            payload = data
            if self._length is not None:
                payload = data[: self._length]
                self._length -= len(payload)
        counted = self._sse is not None and payload and self._sse.feed(payload)
        if counted and self.first_event_at is None:
            self.first_event_at = time.monotonic()
        if counted and self._on_event is not None:
            self._on_event()
        if (self._chunked is not None and self._chunked.done) or self._length == 0:
            self._finish()

    def eof_received(self) -> bool | None:
        if not self.head.done():
            self._fail(ConnectionResetError("the server closed the connection without a response"))
        self._finish()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self._fail(exc or ConnectionResetError("the connection closed before any response"))
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved here: a caller that gave up must not warn
        self._finish()
        if self._transport is not None:
            self._transport.abort()

    def close(self, *, reset: bool = False) -> None:
        """Drop the connection now: with `reset`, an RST (as a crashed client); else a FIN."""
        self.closed = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            transport.abort()
        else:
            transport.close()


def _parse_head(raw: bytes) -> ResponseHead:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", tuple(headers))


async def open_exchange(
    address: str,
    port: int,
    request: bytes,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    count_events: bool = False,
    on_event: Callable[[], None] | None = None,
    timeout: float,
) -> Exchange:
    """Connect (and shake hands, for TLS) within `timeout`, send `request`, return the exchange.

    Raises the OSError / ssl.SSLError of the connection, or TimeoutError.
    """
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(
            lambda: Exchange(request, count_events=count_events, on_event=on_event),
            address,
            port,
            ssl=ssl_context,
            server_hostname=server_hostname if ssl_context else None,
            ssl_handshake_timeout=timeout if ssl_context else None,
        ),
        timeout,
    )
    return protocol
