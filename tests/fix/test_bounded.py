"""The HD101 fixes stay bounded: dropped streams leave no thread behind (issue 9, item 6).

Checked the way the leak was found: the app under uvicorn with a slow upstream
(NEWSROOM_UPSTREAM_DELAY=30 s), many streams opened and dropped with an RST
while their upstream call runs, then the server's thread count read from
/proc/PID/task and /health timed. A pool per stream shut down with
`wait=False` (yesterday's fix, kept in tests/data/leaky_fix) is the control: it
grows by one thread per dropped stream.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, ROOT, newsroom_argv, run_hangdoctor

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

UPSTREAM_S = "30"  # far longer than the test: a leaked thread is still there at the end
POOL = 4  # UPSTREAM_WORKERS of the newsroom's fixed routes
SLACK = 3  # threads a server may start on its own meanwhile (anyio, asyncio)
DEFAULT_POOL = min(32, (os.cpu_count() or 1) + 4)  # the loop's default executor
LEAKY = ROOT / "tests" / "data" / "leaky_fix" / "stream.py"
ROUTE = "api/routes/stream.py"


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def drop_streams(port: int, count: int) -> None:
    """Open /news/stream `count` times; each time wait for its first event, then send an RST.

    The short pause after the first event lets the server ask the generator for its next
    item, so the slow upstream call is running when the client goes.
    """
    request = b"GET /news/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
            sock.sendall(request)
            seen = b""
            deadline = time.monotonic() + 5.0
            while b"data: connected" not in seen:
                assert time.monotonic() < deadline, seen
                chunk = sock.recv(4096)
                assert chunk, f"the server closed the stream: {seen!r}"
                seen += chunk
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def growth_after_drops(server: ManagedServer, count: int) -> int:
    """Threads added by `count` dropped streams; /health must stay fast throughout."""
    base_url = server.base_url
    port = int(base_url.rsplit(":", 1)[1])
    assert timed_get(base_url + "/health", timeout=5.0).ok
    before = threads(server.pid)
    drop_streams(port, count)
    time.sleep(1.0)  # the server has seen every disconnect
    for _ in range(5):
        health = timed_get(base_url + "/health", timeout=2.0)
        assert health.ok and health.latency_s < 1.0, (health, server.log_tail())
        time.sleep(0.1)
    return threads(server.pid) - before


@pytest.fixture
def serve() -> Iterator[Callable[..., ManagedServer]]:
    """Run the newsroom (or a copy) under uvicorn with a 30 s upstream; stopped by PID."""
    started: list[ManagedServer] = []

    def start(app_dir: Path = APP_DIR, app: str = "api.main:app") -> ManagedServer:
        port = free_port()
        server = ManagedServer(
            newsroom_argv(port, app=app, app_dir=app_dir),
            base_url=f"http://127.0.0.1:{port}",
            cwd=str(app_dir),
            env={"NEWSROOM_UPSTREAM_DELAY": UPSTREAM_S, "PYTHONUNBUFFERED": "1"},
            ready_timeout=30.0,
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop(grace=1.0)


def _copy_app(tmp_path: Path) -> Path:
    app = tmp_path / "newsroom"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    return app


@pytest.mark.e2e
def test_hand_fixed_newsroom_keeps_its_threads_bounded(
    serve: Callable[..., ManagedServer],
) -> None:
    """GIVEN fixed_app (one upstream pool of 4 per application) WHEN 40 streams are dropped
    mid-call THEN the server has at most 4 (+ slack) more threads and /health stays fast."""
    server = serve(app="api.main:fixed_app")
    assert growth_after_drops(server, 40) <= POOL + SLACK


@pytest.mark.e2e
def test_executors_helpers_keep_threads_bounded(serve: Callable[..., ManagedServer]) -> None:
    """GIVEN safe_app (hangdoctor.executors: one LoopSafeExecutor of 4 per application) WHEN
    40 streams are dropped mid-call THEN at most 4 (+ slack) more threads."""
    server = serve(app="api.main:safe_app")
    assert growth_after_drops(server, 40) <= POOL + SLACK


@pytest.mark.e2e
def test_scan_fixed_stream_keeps_threads_bounded(
    tmp_path: Path, serve: Callable[..., ManagedServer]
) -> None:
    """GIVEN stream.py fixed by `hangdoctor scan --fix` (the loop's default executor) WHEN more
    streams than that executor has threads are dropped THEN it grows by its size at most."""
    app = _copy_app(tmp_path)
    proc = run_hangdoctor("scan", str(app / ROUTE), "--fix", "--no-cache")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "run_in_executor(None, fetch_news)" in (app / ROUTE).read_text(encoding="utf-8")
    server = serve(app_dir=app)
    assert growth_after_drops(server, DEFAULT_POOL + 30) <= DEFAULT_POOL + SLACK


@pytest.mark.e2e
def test_control_a_pool_per_stream_leaks_a_thread_per_dropped_stream(
    tmp_path: Path, serve: Callable[..., ManagedServer]
) -> None:
    """Control: yesterday's fix (a pool per stream, shutdown(wait=False)) answers /health
    fast too, but 40 dropped streams leave about 40 threads behind, so the checks above
    can fail."""
    app = _copy_app(tmp_path)
    shutil.copyfile(LEAKY, app / ROUTE)
    server = serve(app_dir=app)
    assert growth_after_drops(server, 40) >= 30
