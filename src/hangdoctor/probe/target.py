"""Where a probe sends its traffic: one scheme, host and port, and paths on it.

Every request of a run goes to the host:port of the URL the user gave and
nowhere else, so a stream or health path given as a full URL must name the
same origin.

The URL may carry a path: `hangdoctor probe http://127.0.0.1:8000/health` uses
it as the health path. With `--health` given too, a path in the URL is refused
rather than guessed at (is it a prefix? the health path?). With neither, the
health path is `/health`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from hangdoctor.probe.errors import ProbeError

__all__ = ["DEFAULT_HEALTH", "Endpoint", "parse_request", "parse_target", "request_path"]

DEFAULT_HEALTH = "/health"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_REMEDY = "Pass the server's base URL, like http://127.0.0.1:8000."
_METHOD = re.compile(r"^[A-Za-z]+$")


@dataclass(frozen=True)
class Endpoint:
    """The origin every request of a run goes to."""

    scheme: str  # "http" or "https"
    host: str  # as written in the URL, without brackets
    port: int

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def netloc(self) -> str:
        """host:port, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def host_header(self) -> str:
        """The Host header: the port is left out when it is the scheme's default."""
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return f"[{self.host}]" if ":" in self.host else self.host
        return self.netloc

    def ssl_context(self, *, insecure: bool) -> ssl.SSLContext | None:
        """A client TLS context for https (None for http); `insecure` skips verification."""
        if not self.secure:
            return None
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def is_local(self, address: str | None = None) -> bool:
        """Whether the host (or its resolved `address`) is this machine.

        Binding to an address succeeds only for an address of this machine,
        which covers 127.0.0.1, ::1, 0.0.0.0 and the machine's own LAN address.
        """
        candidate = address or self.host
        if candidate == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        if ip.is_loopback or ip.is_unspecified:
            return True
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.bind((candidate, 0))
            except OSError:
                return False
        return True


def _check_bracketed_host(url: str, netloc: str) -> None:
    """Python 3.10 (and 3.11 before 3.11.4) take any text in brackets as a host; later ones
    reject what is not an IPv6 address: reject it on every version, in the same words."""
    host = netloc.rpartition("@")[2]
    if not host.startswith("["):
        return
    literal = host[1:].partition("]")[0].partition("%")[0]  # fe80::1%eth0: zone id
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        raise ProbeError(
            f"{url!r} is not a valid URL ({literal!r} is not an IPv6 address).", _URL_REMEDY
        ) from None


def _split(url: str) -> tuple[Endpoint, str]:
    """The endpoint and the path (with query) of an absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # an unclosed IPv6 bracket, say: "Invalid IPv6 URL"
        raise ProbeError(f"{url!r} is not a valid URL ({exc}).", _URL_REMEDY) from None
    _check_bracketed_host(url, parts.netloc)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ProbeError(f"{url!r} is not an http:// or https:// URL with a host.", _URL_REMEDY)
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ProbeError(f"{url!r} has an invalid port.", "Use a port from 1 to 65535.") from None
    if port == 0:
        raise ProbeError(f"{url!r} has an invalid port.", "Use a port from 1 to 65535.")
    if parts.username or parts.password:
        raise ProbeError(
            f"{url!r} carries credentials in the URL, which the probe does not send.",
            "Pass them as a header instead: --header 'Authorization: Basic ...'.",
        )
    path = parts.path
    if parts.query:
        path = (path or "/") + "?" + parts.query
    return Endpoint(parts.scheme, parts.hostname, port), path


def parse_target(url: str, health: str | None = None) -> tuple[Endpoint, str]:
    """The endpoint of `url` and the health path (see the module docstring for the rule)."""
    endpoint, path = _split(url)
    if path not in ("", "/"):
        if health is not None:
            raise ProbeError(
                f"The URL {url!r} has a path and --health {health!r} is given too.",
                "Give the base URL (like http://127.0.0.1:8000) with --health PATH, "
                "or put the health path in the URL and drop --health.",
            )
        return endpoint, path
    if health is None:
        return endpoint, DEFAULT_HEALTH
    return endpoint, request_path(health, endpoint, what="--health")


def request_path(value: str, endpoint: Endpoint, *, what: str) -> str:
    """A path on `endpoint`: `/news/stream`, `news/stream` or a full URL of the same origin."""
    text = value.strip()
    if not text:
        raise ProbeError(f"{what} is empty.", "Pass a path like /news/stream.")
    if "://" in text:
        other, path = _split(text)
        if other != endpoint:
            raise ProbeError(
                f"{what} {value!r} points at {other.base_url}, not at {endpoint.base_url}.",
                "The probe only sends traffic to the URL's host and port: pass a path "
                "like /news/stream.",
            )
        return path or "/"
    if any(c in text for c in " \r\n\t"):
        raise ProbeError(f"{what} {value!r} contains whitespace.", "Percent-encode it (%20).")
    return text if text.startswith("/") else "/" + text


def parse_request(value: str, endpoint: Endpoint) -> str:
    """`--request`: "PATH" (a GET) or "METHOD PATH", as "METHOD /path".

    The path is what `request_path` takes: `/transfer`, `transfer` or a full URL of
    the same origin.
    """
    parts = value.split()
    if len(parts) == 1:
        method, path = "GET", parts[0]
    elif len(parts) == 2:
        method, path = parts
    else:
        raise ProbeError(
            f"--request {value!r} is not PATH or 'METHOD PATH'.",
            "Pass --request /orders or --request 'POST /transfer'.",
        )
    if not _METHOD.match(method):
        raise ProbeError(
            f"--request {value!r}: {method!r} is not an HTTP method.",
            "Pass --request 'POST /transfer' (or a path alone for a GET).",
        )
    return f"{method.upper()} {request_path(path, endpoint, what='--request')}"
