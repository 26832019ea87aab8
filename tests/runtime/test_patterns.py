"""Every way requests hang on a healthy loop, in a real server, through `watch` and the middleware.

tests/runtime/apps/patterns_app.py serves one pattern per route group (anyio locks in
opposite orders, an httpx pool drained by unclosed streamed responses, a SQLAlchemy pool
held by open event streams, a future whose reader task died, a body a middleware read, a
thread limiter whose threads do not return). Each test starts the real server, makes the
requests that hang (left open on raw sockets, as clients that wait), and checks the one
stuck record it must produce: its code, the line, what it waits on, who holds it. On every
Python .ci/run has (marker every_python).
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.jsonl import whole_records

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.every_python]

APPS = Path(__file__).parent / "apps"
SHOWN = "tests/runtime/apps/patterns_app.py"  # as records show it: relative to the server's cwd
TOKEN = "patterns-token-0123456789"


@dataclass(frozen=True)
class Pattern:
    requests: tuple[str, ...]  # "METHOD /path", sent in order and left open
    code: str
    at: tuple[str, ...]  # the tags of the lines the record may name
    waits_on: dict[str, Any] = field(default_factory=dict)  # fields the record's waits_on has
    message: str = ""  # a phrase of the message
    holders_at: tuple[str, ...] = ()  # the tags of the holders' lines, if checked
    pause: float = 0.3  # between the requests: the holders take it before the waiter asks


PATTERNS = {
    "anyio-locks": Pattern(
        ("POST /anyio/transfer", "POST /anyio/close-day"),
        "HD601",
        ("anyio-transfer-ledger", "anyio-close-accounts"),
        {"kind": "lock"},
        "none of them can go on",
        ("anyio-transfer-accounts", "anyio-close-ledger"),
        pause=0.0,  # together: each takes its first lock before the other's second
    ),
    "httpx-pool": Pattern(
        ("GET /leak", "GET /leak", "GET /fetch"),
        "HD602",
        ("fetch",),
        {"kind": "pool", "type": "httpcore.AsyncConnectionPool", "capacity": 2, "in_use": 2},
        "for a connection from httpcore.AsyncConnectionPool (2 of 2 in use)",
    ),
    "sqlalchemy-pool": Pattern(
        ("GET /db/events", "GET /db/events", "GET /db/query"),
        "HD602",
        ("db-query",),
        {"kind": "pool", "type": "SQLAlchemy pool", "capacity": 2, "in_use": 2},
        "(2 of 2 in use)",
        ("db-events", "db-events"),
    ),
    "reader-died": Pattern(
        ("GET /ask",), "HD603", ("ask",), {"kind": "future"}, "ConnectionResetError"
    ),
    "body-read": Pattern(
        ("POST /orders",),
        "HD603",
        ("orders",),
        {"kind": "receive", "type": "the request body"},
        "read once already (by a middleware?)",
    ),
    "thread-limiter": Pattern(
        ("GET /render", "GET /render", "GET /render"),
        "HD604",
        ("render",),
        {"kind": "limiter"},
        "",
        ("render", "render"),
    ),
}


def _send(port: int, request: str) -> socket.socket:
    """Send `request` ("METHOD /path"; a POST carries a small JSON body) and keep it open."""
    method, path = request.split()
    body = b'{"sku": 1}' if method == "POST" else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def _uvicorn(port: int, app: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", f"patterns_app:{app}", "--app-dir", str(APPS),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--loop", "asyncio",
    ]  # fmt: skip


def _start(servers: list[ManagedServer], argv: list[str], port: int) -> ManagedServer:
    from tests.runtime.conftest import start_server

    return start_server(servers, argv, port, PATTERNS_DEBUG_TOKEN=TOKEN)


def _provoke(server: ManagedServer, pattern: Pattern) -> list[socket.socket]:
    port = int(server.base_url.rsplit(":", 1)[1])
    sockets = []
    for request in pattern.requests:
        sockets.append(_send(port, request))
        time.sleep(pattern.pause)
    return sockets


def _check(record: dict[str, Any], pattern: Pattern, server: ManagedServer) -> None:
    from tests.runtime.apps.patterns_app import line_of

    assert record["code"] == pattern.code, record
    assert record["file"] == SHOWN, record
    assert record["line"] in {line_of(tag) for tag in pattern.at}, record
    for key, value in pattern.waits_on.items():
        assert record["waits_on"][key] == value, (key, record["waits_on"])
    assert pattern.message in record["message"], record["message"]
    if pattern.holders_at:
        lines = sorted(h["line"] for h in record["holders"])
        assert lines == sorted(line_of(tag) for tag in pattern.holders_at), record["holders"]
    health = timed_get(server.base_url + "/health", timeout=5)
    assert health.ok and health.latency_s < 1.0, health  # the loop answered all along


def _wait(read: Any, code: str, timeout: float = 25.0) -> list[dict[str, Any]]:
    """The stuck records `read()` gives once one has `code` (or the deadline passed)."""
    deadline = time.monotonic() + timeout
    while True:
        stuck = [x for x in read() if x.get("record") == "stuck"]
        if any(x["code"] == code for x in stuck) or time.monotonic() > deadline:
            return stuck
        time.sleep(0.2)


@pytest.mark.parametrize("name", list(PATTERNS))
def test_watch_names_the_pattern(servers: list[ManagedServer], tmp_path: Path, name: str) -> None:
    """GIVEN the pattern's requests on a server run under `hangdoctor watch --stuck-after 1`
    THEN the JSONL file gets its one stuck record, at the route's line."""
    pattern = PATTERNS[name]
    out = tmp_path / "records.jsonl"
    port = free_port()
    argv = [
        sys.executable, "-m", "hangdoctor", "watch", "--stuck-after", "1", "--out", str(out),
        "--", *_uvicorn(port, "app"),
    ]  # fmt: skip
    server = _start(servers, argv, port)
    sockets = _provoke(server, pattern)
    try:
        stuck = _wait(lambda: whole_records(out), pattern.code)
        mine = [x for x in stuck if x["code"] == pattern.code]
        assert len(mine) == 1, stuck
        _check(mine[0], pattern, server)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("name", list(PATTERNS))
def test_the_middleware_names_the_pattern(servers: list[ManagedServer], name: str) -> None:
    """GIVEN the pattern's requests on a server with HangdoctorMiddleware(stuck_after=1)
    THEN its debug page lists the one stuck record, with the request it serves."""
    port = free_port()
    check_through_middleware(_start(servers, _uvicorn(port, "watched"), port), PATTERNS[name])


def check_through_middleware(server: ManagedServer, pattern: Pattern) -> None:
    """Provoke `pattern` on a server running `patterns_app:watched`; check its debug page."""
    import httpx
    from tests.runtime.apps.patterns_app import DEBUG_PATH

    sockets = _provoke(server, pattern)
    try:
        with httpx.Client(timeout=5) as client:

            def read() -> list[dict[str, Any]]:
                page = client.get(
                    server.base_url + DEBUG_PATH, headers={"authorization": f"Bearer {TOKEN}"}
                )
                assert page.status_code == 200, page.text
                return list(page.json()["stuck"])

            stuck = _wait(read, pattern.code)
        mine = [x for x in stuck if x["code"] == pattern.code]
        assert len(mine) == 1, stuck
        _check(mine[0], pattern, server)
        request = mine[0]["request"]
        assert request is not None, mine[0]
        assert f"{request['method']} {request['path']}" in pattern.requests
    finally:
        for sock in sockets:
            sock.close()
