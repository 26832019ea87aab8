"""Where the probe sends traffic: the URL rules, and only the URL's host and port."""

from __future__ import annotations

import pytest

from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.target import Endpoint, parse_target, request_path


@pytest.mark.parametrize(
    ("url", "health", "base", "path"),
    [
        ("http://127.0.0.1:8000", None, "http://127.0.0.1:8000", "/health"),
        ("http://127.0.0.1:8000/", "/healthz", "http://127.0.0.1:8000", "/healthz"),
        ("http://127.0.0.1:8000/ping?deep=1", None, "http://127.0.0.1:8000", "/ping?deep=1"),
        ("https://example.test", "status", "https://example.test:443", "/status"),
        ("http://[::1]:9000", None, "http://[::1]:9000", "/health"),
    ],
)
def test_parse_target(url: str, health: str | None, base: str, path: str) -> None:
    """The base URL and the health path: --health, else the URL's path, else /health."""
    endpoint, health_path = parse_target(url, health)
    assert endpoint.base_url == base
    assert health_path == path


def test_host_header_leaves_out_default_port() -> None:
    """Host carries the port only when it is not the scheme's default."""
    assert Endpoint("https", "example.test", 443).host_header == "example.test"
    assert Endpoint("http", "::1", 8000).host_header == "[::1]:8000"


def test_url_path_with_health_is_refused() -> None:
    """A path in the URL plus --health is refused rather than guessed at."""
    with pytest.raises(ProbeError, match="--health"):
        parse_target("http://127.0.0.1:8000/api", "/health")


def test_request_path_same_origin_only() -> None:
    """A stream given as a full URL must be on the same origin; paths get a leading slash."""
    endpoint = Endpoint("http", "127.0.0.1", 8000)
    assert request_path("news/stream", endpoint, what="--stream") == "/news/stream"
    assert request_path("http://127.0.0.1:8000/s?a=1", endpoint, what="--stream") == "/s?a=1"
    with pytest.raises(ProbeError, match="only sends traffic"):
        request_path("http://127.0.0.1:8001/s", endpoint, what="--stream")
    with pytest.raises(ProbeError, match="whitespace"):
        request_path("/a b", endpoint, what="--stream")


def test_is_local() -> None:
    """Loopback and this machine's addresses are local; a documentation address is not."""
    endpoint = Endpoint("http", "127.0.0.1", 8000)
    assert endpoint.is_local()
    assert Endpoint("http", "localhost", 8000).is_local()
    assert endpoint.is_local("0.0.0.0")
    assert not endpoint.is_local("192.0.2.1")  # TEST-NET-1, never assigned to a host
