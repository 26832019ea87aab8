"""Shared fixtures: the newsroom example app run under real servers, and its expect markers.

Every line where hangdoctor must point carries `# hd-expect: CODE` in the app's
source; tests read the expected file:line from there instead of hard-coding it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.probe.http import HealthResult, timed_get
from hangdoctor.probe.server import ManagedServer, free_port

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "newsroom"
_MARKER = re.compile(r"#\s*hd-expect:\s*([\w-]+)")


@dataclass(frozen=True)
class Expected:
    file: str  # relative to the app dir, e.g. "api/routes/causes.py"
    line: int


def expected(tag: str) -> Expected:
    """The file:line marked `# hd-expect: TAG` in the example app (exactly one)."""
    hits = []
    for path in sorted(APP_DIR.rglob("*.py")):
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            m = _MARKER.search(text)
            if m and m.group(1) == tag:
                hits.append(Expected(str(path.relative_to(APP_DIR)), n))
    assert len(hits) == 1, f"marker {tag!r}: {hits}"
    return hits[0]


def newsroom_argv(
    port: int,
    *,
    app: str = "api.main:app",
    loop: str = "asyncio",
    workers: int = 1,
    app_dir: Path = APP_DIR,
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        loop,
        "--no-access-log",
    ]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


def gunicorn_argv(app: str, port: int, *, preload: bool = False) -> list[str]:
    """gunicorn with 2 uvicorn workers serving `app` from the newsroom example."""
    argv = [sys.executable, "-m", "gunicorn", *(["--preload"] if preload else [])]
    return [
        *argv,
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "2",
        "--chdir",
        str(APP_DIR),
        app,
        "-b",
        f"127.0.0.1:{port}",
    ]


ServerFactory = Callable[..., ManagedServer]


@pytest.fixture
def newsroom() -> Iterator[ServerFactory]:
    """Start newsroom servers on free ports; every one is stopped by PID at teardown."""
    started: list[ManagedServer] = []

    def start(
        *,
        app: str = "api.main:app",
        loop: str = "asyncio",
        workers: int = 1,
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> ManagedServer:
        if argv:
            from hangdoctor.cli.doctor import port_of

            found = port_of(argv)
            assert found is not None, f"the server command names no port: {argv}"
            port, cmd = found, list(argv)
        else:
            port = free_port()
            cmd = newsroom_argv(port, app=app, loop=loop, workers=workers)
        server = ManagedServer(
            cmd,
            base_url=f"http://127.0.0.1:{port}",
            cwd=str(ROOT),
            env={"NEWSROOM_UPSTREAM_DELAY": "20", "PYTHONUNBUFFERED": "1", **(env or {})},
            ready_timeout=30.0,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop(grace=1.0)


class Background:
    """Requests sent from threads, so a test can diagnose while they block the server."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self.results: list[HealthResult] = []

    def get(self, url: str, *, timeout: float = 30.0, count: int = 1) -> None:
        for _ in range(count):
            t = threading.Thread(
                target=lambda: self.results.append(timed_get(url, timeout=timeout)), daemon=True
            )
            t.start()
            self._threads.append(t)

    def join(self, timeout: float = 40.0) -> None:
        for t in self._threads:
            t.join(timeout)


@pytest.fixture
def background() -> Iterator[Background]:
    """Background requests; joined (bounded) at teardown so none outlives the test."""
    bg = Background()
    yield bg
    bg.join()


def run_hangdoctor(
    *args: str, timeout: float = 90.0, user: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a subprocess (optionally as another user, via setpriv)."""
    argv = [sys.executable, "-m", "hangdoctor", *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=env,
        input=stdin,
        check=False,
    )


def diagnose_json(pid: int, *extra: str) -> tuple[int, dict[str, Any]]:
    """`hangdoctor diagnose --pid PID --format json`: (exit code, parsed output)."""
    proc = run_hangdoctor("diagnose", "--pid", str(pid), "--format", "json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)
