"""HangdoctorMiddleware in a real uvicorn: SSE untouched, stalls name the request, debug page."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import APP_DIR, expected, newsroom_argv
from tests.runtime.conftest import start_server

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.runtime import HangdoctorMiddleware

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
TOKEN = "debug-token-0123456789"
STALLS = "/_hangdoctor/stalls"


def _uvicorn(started: list[ManagedServer], app: str, app_dir: Path, **env: str) -> ManagedServer:
    port = free_port()
    return start_server(started, newsroom_argv(port, app=app, app_dir=app_dir), port, **env)


def _read_stream(url: str) -> list[tuple[float, bytes]]:
    """Every chunk as it arrived, with its arrival time since the request."""
    got: list[tuple[float, bytes]] = []
    start = time.monotonic()
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for chunk in resp.iter_raw():
            got.append((time.monotonic() - start, chunk))
    return got


def _stalls_page(client: httpx.Client, base_url: str, code: str) -> httpx.Response:
    """The debug page once it lists a `code` stall: a record is made when the stall ends."""
    deadline = time.monotonic() + 10
    while True:
        page = client.get(base_url + STALLS, headers={"authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200, page.text
        if any(s["code"] == code for s in page.json()["stalls"]) or time.monotonic() > deadline:
            return page
        time.sleep(0.1)


def test_sse_passes_byte_for_byte_and_unbuffered(servers: list[ManagedServer]) -> None:
    from tests.runtime.apps.sse_passthrough import CHUNKS, PAUSE_S

    bare = _uvicorn(servers, "sse_passthrough:bare", APPS)
    wrapped = _uvicorn(servers, "sse_passthrough:wrapped", APPS)
    plain = _read_stream(bare.base_url + "/events")
    through = _read_stream(wrapped.base_url + "/events")
    assert b"".join(c for _, c in through) == b"".join(c for _, c in plain) == b"".join(CHUNKS)
    # not buffered: the first event arrives long before the stream ends
    first = next(t for t, c in through if c)
    assert first < PAUSE_S * (len(CHUNKS) - 2), through


def test_stall_names_the_request_and_debug_page_needs_a_token(
    servers: list[ManagedServer],
) -> None:
    server = _uvicorn(servers, "api.watched:app", APP_DIR, NEWSROOM_DEBUG_TOKEN=TOKEN)
    url = f"{server.base_url}/causes/sleep?seconds=0.8&api_key=hunter2"
    with httpx.Client(timeout=20) as client:
        assert client.get(url, headers={"x-request-id": "req-42"}).status_code == 200
        assert client.get(server.base_url + STALLS).status_code == 401
        wrong = client.get(server.base_url + STALLS, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "www-authenticate" in wrong.headers
        page = _stalls_page(client, server.base_url, "HD201")
    assert "hunter2" not in page.text  # no query strings on the page
    stall = next(s for s in page.json()["stalls"] if s["code"] == "HD201")
    exp = expected("HD201")
    assert stall["file"].endswith(exp.file) and stall["line"] == exp.line
    assert stall["request"] == {
        "method": "GET",
        "path": "/causes/sleep",
        "route": "/causes/sleep",
        "request_id": "req-42",
        "streaming": False,
        "disconnected": False,
        "age_s": stall["request"]["age_s"],
        "disconnected_s": None,
    }
    assert 0 <= stall["request"]["age_s"] < 1.0


def test_stream_abort_stall_names_the_dropped_stream(servers: list[ManagedServer]) -> None:
    server = _uvicorn(servers, "api.watched:app", APP_DIR, NEWSROOM_DEBUG_TOKEN=TOKEN)
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{server.base_url}/news/stream") as resp,
    ):
        assert next(resp.iter_lines()).startswith("event: hello")
    time.sleep(0.5)
    assert timed_get(server.base_url + "/health", timeout=10).ok  # after the stall ends
    with httpx.Client(timeout=10) as client:
        page = _stalls_page(client, server.base_url, "HD101")
        metrics = client.get(server.base_url + "/metrics/").text
    stall = next(s for s in page.json()["stalls"] if s["code"] == "HD101")
    assert stall["line"] == expected("HD101").line
    assert stall["request"]["path"] == "/news/stream"
    assert stall["request"]["streaming"] and stall["request"]["disconnected"]
    assert 'hangdoctor_stalls_total{code="HD101"} 1.0' in metrics
    assert "hangdoctor_open_streams 0.0" in metrics
    assert "hangdoctor_anyio_worker_threads_limit 40.0" in metrics


def test_debug_page_is_off_without_a_path_and_needs_a_token() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="needs debug_token"):
        HangdoctorMiddleware(app, debug_path=STALLS)
    with pytest.raises(ValueError, match="must start with"):
        HangdoctorMiddleware(app, debug_path="stalls", debug_token=TOKEN)


def test_websocket_and_lifespan_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["type"]))

    async def main() -> None:
        mw = HangdoctorMiddleware(app)

        async def receive() -> dict[str, object]:
            return {"type": "lifespan.startup"}

        async def send(message: object) -> None:
            return None

        await mw({"type": "lifespan"}, receive, send)
        await mw({"type": "websocket", "path": "/ws"}, receive, send)

    asyncio.run(main())
    assert seen == ["lifespan", "websocket"]


def test_a_debug_token_no_header_can_carry_is_refused_when_made() -> None:
    """A non-ASCII or spaced token could never match the header's bytes: a clear ValueError.

    The token was encoded as UTF-8 and the header decoded as latin-1, so `tökén` never
    authenticated, silently.
    """

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    for token in ("tökén-0123456789", "two words", "tab\there", "line\nbreak"):
        with pytest.raises(ValueError, match="printable ASCII"):
            HangdoctorMiddleware(app, debug_path=STALLS, debug_token=token)


def test_debug_token_is_compared_as_the_bytes_the_client_sent() -> None:
    """The right token opens the page, whatever the scheme's case; other bytes get 401."""

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the debug page is answered by the middleware")

    async def status(authorization: bytes) -> int:
        mw = HangdoctorMiddleware(app, debug_path=STALLS, debug_token=TOKEN)
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        headers = [(b"authorization", authorization)]
        await mw({"type": "http", "path": STALLS, "headers": headers}, receive, send)
        return int(str(sent[0]["status"]))

    token = TOKEN.encode("ascii")
    assert asyncio.run(status(b"Bearer " + token)) == 200
    assert asyncio.run(status(b"bearer " + token)) == 200
    assert asyncio.run(status(b"Bearer " + token + b"\xc3\xb6")) == 401  # UTF-8 bytes
    assert asyncio.run(status(b"Bearer " + token[:-1] + b"\xf6")) == 401  # latin-1 bytes
    assert asyncio.run(status(b"Basic " + token)) == 401
