"""Minimal HTTP on 127.0.0.1 with hard deadlines, standard library only.

A hung server accepts the TCP connection (the kernel does that) and then says
nothing, so every read needs its own deadline; `http.client` with a socket
timeout gives exactly that without pulling an HTTP library into the base install.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from hangdoctor.errors import HangdoctorError

__all__ = ["HealthResult", "abort_stream", "split_url", "timed_get"]


class BadURLError(HangdoctorError):
    """A URL hangdoctor cannot use."""


@dataclass(frozen=True)
class HealthResult:
    """One timed request: status and latency, or why there was none."""

    status: int | None
    latency_s: float
    error: str | None = None  # "timeout", "refused", ...

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL; BadURLError with the remedy otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BadURLError(
            f"{url!r} is not an http:// URL with a host.",
            "Pass a URL like http://127.0.0.1:8000/health.",
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise BadURLError(f"{url!r} has an invalid port.", "Use a port from 1 to 65535.") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, path


def timed_get(url: str, timeout: float = 2.0) -> HealthResult:
    """GET `url`, giving up after `timeout` seconds in total."""
    host, port, path = split_url(url)
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return HealthResult(resp.status, time.monotonic() - start)
    except TimeoutError:
        return HealthResult(None, time.monotonic() - start, "timeout")
    except ConnectionRefusedError:
        return HealthResult(None, time.monotonic() - start, "connection refused")
    except (OSError, http.client.HTTPException) as exc:
        return HealthResult(None, time.monotonic() - start, type(exc).__name__)
    finally:
        conn.close()


def abort_stream(url: str, after: float = 0.5, timeout: float = 5.0) -> int:
    """Open an SSE stream, read for `after` seconds, then drop the connection.

    Returns the number of bytes read. Dropping the socket is what a browser tab
    closing or a client timeout does, and what makes the server cancel the
    response generator.
    """
    host, port, path = split_url(url)
    received = 0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        )
        sock.sendall(request.encode("ascii"))
        deadline = time.monotonic() + after
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += len(chunk)
        # RST rather than FIN is not needed: uvicorn notices EOF and sends http.disconnect
    return received
