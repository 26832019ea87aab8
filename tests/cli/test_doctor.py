"""`hangdoctor doctor`: start the server, probe, catch in the act, fix, prove — and bad input."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, expected, run_hangdoctor

from hangdoctor.cli.doctor import port_of
from hangdoctor.probe.server import free_port


@pytest.mark.parametrize(
    ("argv", "port"),
    [
        (["uvicorn", "app:app", "--port", "8000"], 8000),
        (["uvicorn", "app:app", "--port=8001"], 8001),
        (["hypercorn", "app:app", "--bind", "127.0.0.1:8002"], 8002),
        (["gunicorn", "-b", "0.0.0.0:8003", "app:app"], 8003),
        (["hypercorn", "-b", "[::1]:8004", "app:app"], 8004),
        (["uvicorn", "app:app"], None),
    ],
)
def test_port_of(argv: list[str], port: int | None) -> None:
    """The port comes from --port, --bind or -b, as each server spells it."""
    assert port_of(argv) == port


@pytest.mark.e2e
def test_doctor_fix_removes_the_hang(tmp_path: Path) -> None:
    """GIVEN the buggy app WHEN doctor --fix THEN HD101 caught, fixed in the file, probe passes."""
    app = tmp_path / "newsroom"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    stream = app / "api" / "routes" / "stream.py"
    port = free_port()
    proc = run_hangdoctor(
        "doctor",
        "--stream",
        "/news/stream",
        "--clients",
        "4",
        "--duration",
        "5",
        "--fix",
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--app-dir",
        str(app),
        "--port",
        str(port),
        "--loop",
        "asyncio",
        timeout=150,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert "HD101" in out
    assert f"stream.py:{expected('HD101').line}" in out
    assert "Applied the HD101 fix" in out
    assert "After the fix the probe passes." in out
    fixed = stream.read_text(encoding="utf-8")
    assert "run_in_executor(None, fetch_news)" in fixed  # the bounded fix: no pool per stream
    assert "with ThreadPoolExecutor(max_workers=2) as ex:" not in fixed
    assert "Traceback" not in out + proc.stderr


@pytest.mark.e2e
def test_doctor_without_fix_recommends_and_fails() -> None:
    """Without --fix the probe fails (exit 1), the diagnosis is shown with the fix in words."""
    port = free_port()
    proc = run_hangdoctor(
        "doctor",
        "--stream",
        "/news/stream",
        "--clients",
        "2",
        "--duration",
        "4",
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--app-dir",
        str(APP_DIR),
        "--port",
        str(port),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Recommended fix for HD101" in proc.stdout


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        (["no-such-server-binary-xyz", "--port", "9"], "was not found"),
        ([sys.executable, "-c", "import sys; sys.exit(3)", "--port", "PORT"], "exited with code 3"),
        (
            [sys.executable, "-c", "import time; time.sleep(60)", "--port", "PORT"],
            "did not answer",
        ),
        ([sys.executable, "-c", "pass"], "which port"),
    ],
    ids=["not-found", "crashes", "never-answers", "no-port"],
)
def test_doctor_bad_server(server: list[str], needle: str) -> None:
    """A server that cannot start is one sentence, exit 2, and no process is left behind."""
    port = str(free_port())
    argv = [port if a == "PORT" else a for a in server]
    proc = run_hangdoctor(
        "doctor", "--stream", "/s", "--ready-timeout", "3", "--", *argv, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert needle in proc.stderr
