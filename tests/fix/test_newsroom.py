"""The HD101 fix on a copy of the real example app: the fixed route no longer freezes it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, expected, newsroom_argv, run_hangdoctor

from hangdoctor.fix import FixSite, fix_file
from hangdoctor.probe.http import abort_stream, timed_get
from hangdoctor.probe.server import ManagedServer, free_port

ROUTE = "api/routes/stream.py"


def _copy_app(tmp_path: Path) -> Path:
    app = tmp_path / "newsroom"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def _fix_copy(app: Path) -> str:
    where = expected("HD101")
    assert where.file == ROUTE
    path = app / ROUTE
    line = path.read_text(encoding="utf-8").splitlines()[where.line - 1]
    result = fix_file(path, [FixSite("HD101", where.line, line.index("with"))])
    assert result.written, result.outcome.skipped
    return path.read_text(encoding="utf-8")


def test_fix_of_the_example_route_uses_no_executor_per_stream(tmp_path: Path) -> None:
    """The fixed copy creates no pool per stream: its jobs go to the loop's default executor
    (one bounded pool per loop), and the executor import it no longer needs is gone."""
    fixed = _fix_copy(_copy_app(tmp_path))
    gen = fixed[fixed.index("    async def gen()") :]
    assert "item = await loop.run_in_executor(None, fetch_news)" in gen
    code = fixed[fixed.index('"""', 3) + 3 :]  # the docstring still tells the story
    assert "ThreadPoolExecutor" not in code and "shutdown" not in code
    compile(fixed, ROUTE, "exec")


def _health_during_aborts(base: str) -> list[float | None]:
    """Abort two streams, then poll /health for 3 s: latencies, None for no answer in 1 s."""
    for _ in range(2):
        abort_stream(base + "/news/stream", after=0.5)
    seen: list[float | None] = []
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        r = timed_get(base + "/health", timeout=1.0)
        seen.append(r.latency_s if r.ok else None)
        time.sleep(0.1)
    return seen


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Run a copy of the app under uvicorn on a free port; every server is stopped by PID."""
    started: list[ManagedServer] = []

    def start(app: Path) -> str:
        # the conftest `newsroom(argv=...)` path keeps its own port, not the one in argv
        port = free_port()
        argv = newsroom_argv(port)
        argv[argv.index("--app-dir") + 1] = str(app)
        server = ManagedServer(
            argv,
            base_url=f"http://127.0.0.1:{port}",
            cwd=str(app),
            env={"NEWSROOM_UPSTREAM_DELAY": "20", "PYTHONUNBUFFERED": "1"},
            ready_timeout=30.0,
        )
        started.append(server)
        return server.start().base_url

    try:
        yield start
    finally:
        for server in started:
            server.stop(grace=1.0)


@pytest.mark.e2e
def test_fixed_copy_keeps_answering_after_stream_aborts(
    tmp_path: Path, serve: Callable[[Path], str]
) -> None:
    """GIVEN the automatically fixed copy WHEN streams are aborted THEN /health answers in 1 s."""
    app = _copy_app(tmp_path)
    _fix_copy(app)
    seen = _health_during_aborts(serve(app))
    assert seen and all(s is not None for s in seen), seen


@pytest.mark.e2e
def test_unfixed_copy_freezes_under_the_same_aborts(
    tmp_path: Path, serve: Callable[[Path], str]
) -> None:
    """Control: the same procedure on the unfixed copy does stop /health answering in 1 s."""
    seen = _health_during_aborts(serve(_copy_app(tmp_path)))
    assert None in seen, seen


def _snapshot(app: Path) -> dict[str, bytes]:
    return {str(p.relative_to(app)): p.read_bytes() for p in sorted(app.rglob("*.py"))}


def test_scan_fix_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    """`scan --fix --unsafe-fixes` on the app copy fixes it; a second run leaves every byte."""
    app = _copy_app(tmp_path)
    original = _snapshot(app)
    first = run_hangdoctor("scan", str(app), "--fix", "--unsafe-fixes", "--no-cache")
    assert first.returncode in (0, 1), first.stderr
    once = _snapshot(app)
    assert once != original
    for name, data in once.items():
        compile(data, name, "exec")
    second = run_hangdoctor("scan", str(app), "--fix", "--unsafe-fixes", "--no-cache")
    assert second.returncode in (0, 1), second.stderr
    assert _snapshot(app) == once
