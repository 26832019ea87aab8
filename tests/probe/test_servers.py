"""The probe under the other ASGI servers: hypercorn, gunicorn with 2 uvicorn workers, granian.

Each must reproduce the hang with the buggy app (and have it caught in the
act at the marked line) and pass with the fixed one. hypercorn announces ASGI
spec 2.1 to the app, so Starlette still cancels the generator on disconnect:
the hang reproduces there as under uvicorn.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, ROOT, gunicorn_argv
from tests.probe._servers import quick_config
from tests.probe.test_engine import assert_hd101_caught, assert_passes

from hangdoctor.probe.engine import probe
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.timeline import ProbeVerdict

pytestmark = pytest.mark.e2e

BUGGY, FIXED = "api.main:app", "api.main:fixed_app"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def hypercorn_argv(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}"]


def granian_argv(app: str, port: int, loop: str) -> list[str]:
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    return [
        granian,
        "--interface",
        "asgi",
        "--loop",
        loop,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(APP_DIR),
        app,
    ]


ServerStarter = Callable[[str, str], ManagedServer]


@pytest.fixture
def start_server() -> Iterator[ServerStarter]:
    """Start the newsroom app under a named server; every one is stopped by PID at teardown."""
    started: list[ManagedServer] = []

    def start(kind: str, app: str) -> ManagedServer:
        port = free_port()
        env = {"NEWSROOM_UPSTREAM_DELAY": "20", "PYTHONUNBUFFERED": "1"}
        if kind == "hypercorn":
            # hypercorn has no --app-dir: the app's directory goes on the import path
            argv = hypercorn_argv(app, port)
            env["PYTHONPATH"] = str(APP_DIR)
        elif kind == "gunicorn":
            argv = gunicorn_argv(app, port)
        else:
            argv = granian_argv(app, port, kind.split("-", 1)[1])
        server = ManagedServer(
            argv, base_url=f"http://127.0.0.1:{port}", cwd=str(ROOT), env=env, ready_timeout=30.0
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop(grace=1.0)


_KINDS = [
    pytest.param(
        "hypercorn", marks=pytest.mark.skipif(not _has("hypercorn"), reason="needs hypercorn")
    ),
    pytest.param("gunicorn", marks=pytest.mark.skipif(not _has("gunicorn"), reason="gunicorn")),
    pytest.param(
        "granian-asyncio", marks=pytest.mark.skipif(not _has("granian"), reason="needs granian")
    ),
]


@pytest.mark.parametrize("kind", _KINDS)
def test_buggy_fails_and_is_diagnosed(start_server: ServerStarter, kind: str) -> None:
    """The buggy app hangs under this server too, and the capture names HD101 at the line."""
    server = start_server(kind, BUGGY)
    result = probe(quick_config(server.base_url))
    assert_hd101_caught(result)
    if kind == "gunicorn":
        # the master holds the socket; the workers run the app: all were examined
        assert result.pid == server.pid
        assert result.diagnosis is not None and len(result.diagnosis.pids) >= 3
        assert all(f.pid != server.pid for f in result.diagnosis.findings)


@pytest.mark.parametrize("kind", _KINDS)
def test_fixed_passes(start_server: ServerStarter, kind: str) -> None:
    """The fixed app passes under this server."""
    server = start_server(kind, FIXED)
    assert_passes(probe(quick_config(server.base_url)))


@pytest.mark.skipif(not _has("granian"), reason="needs granian")
def test_granian_uvloop_hd101(start_server: ServerStarter) -> None:
    """Under granian's default loop (uvloop, run from granian's worker spawner): HD101 caught."""
    server = start_server("granian-uvloop", BUGGY)
    result = probe(quick_config(server.base_url, duration_s=4.0))
    assert result.verdict is ProbeVerdict.FAIL  # the probe side works under every loop
    assert result.diagnosis is not None
    assert_hd101_caught(result)
