"""Shared fixtures: the newsroom example app run under real servers, and where it must point.

Every line where hangdoctor must point is listed in tests/data/newsroom_lines.json
by file, function and text; tests look its line number up in the app's source
instead of hard-coding it. The app itself carries no marker comments: its source
is what users see in every report, the demo and the docs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hangdoctor.probe.http import HealthResult, timed_get
from hangdoctor.probe.server import ManagedServer, free_port

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "newsroom"
LINES = ROOT / "tests" / "data" / "newsroom_lines.json"


@dataclass(frozen=True)
class Expected:
    file: str  # relative to the app dir, e.g. "api/routes/causes.py"
    line: int
    text: str  # the line's source, stripped


@functools.cache
def golden_generator() -> ModuleType:
    """tests/data/golden/generate.py, whose table reader the golden captures were made with."""
    path = ROOT / "tests" / "data" / "golden" / "generate.py"
    spec = importlib.util.spec_from_file_location("golden_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def expected_lines() -> dict[str, Expected]:
    """Every line of tests/data/newsroom_lines.json, by tag, at its line in the app today."""
    table = golden_generator().read_markers(APP_DIR, LINES)
    return {tag: Expected(m.file, m.line, m.text) for tag, m in table.items()}


def expected(tag: str) -> Expected:
    """The file:line hangdoctor must point at for TAG (a code like HD201, or `worker`)."""
    lines = expected_lines()
    assert tag in lines, f"{tag!r} is not in {LINES}"
    return lines[tag]


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
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=env,
        input=stdin,
        check=False,
    )
    if user is not None:
        skip_unless_runs_as(user, proc)
    return proc


def skip_unless_runs_as(user: str, proc: subprocess.CompletedProcess[str]) -> None:
    """Skip when the interpreter could not even start as `user`: a pyenv build under /root
    (mode 700) finds its libpython only there, which another user cannot read."""
    if proc.returncode == 127 and "error while loading shared libraries" in proc.stderr:
        pytest.skip(f"{sys.executable} cannot start as uid {user} here: {proc.stderr.strip()}")


def diagnose_json(pid: int, *extra: str) -> tuple[int, dict[str, Any]]:
    """`hangdoctor diagnose --pid PID --format json`: (exit code, parsed output)."""
    proc = run_hangdoctor("diagnose", "--pid", str(pid), "--format", "json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)
