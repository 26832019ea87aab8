"""`hangdoctor doctor`: start the server, probe, catch in the act, fix, prove — and bad input."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, ROOT, expected, run_hangdoctor

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


def doctor_in(tmpdir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """`hangdoctor doctor ARGS` with TMPDIR=`tmpdir`, so the server logs it leaves can be seen."""
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1", TMPDIR=str(tmpdir))
    return subprocess.run(
        [sys.executable, "-m", "hangdoctor", "doctor", *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), env=env, check=False,
    )  # fmt: skip


def server_logs(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("hangdoctor-server-*.log"))


@pytest.mark.e2e
def test_doctor_fix_removes_the_hang(tmp_path: Path) -> None:
    """GIVEN the buggy app WHEN doctor --fix --report THEN caught, fixed, passes; both runs shown.

    The report and the terminal keep the run before the fix (its figures, timeline and
    diagnosis), the diff, and the run after it side by side; the probe's options are
    taken; no server log is left in TMPDIR.
    """
    app = tmp_path / "newsroom"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    stream = app / "api" / "routes" / "stream.py"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    report = tmp_path / "doctor.html"
    port = free_port()
    proc = doctor_in(
        tmpdir,
        "--stream", "/news/stream", "--clients", "4", "--duration", "5",
        "--abort-after", "0.2-1", "--seed", "3", "--p99-threshold", "0.5",
        "--max-slowdown", "10", "--fix", "--report", str(report),
        "--", sys.executable, "-m", "uvicorn", "api.main:app", "--app-dir", str(app),
        "--port", str(port), "--loop", "asyncio",
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert "HD101" in out
    assert f"stream.py:{expected('HD101').line}" in out
    assert "Applied the HD101 fix" in out
    assert "After the fix the probe passes." in out
    assert "with ThreadPoolExecutor(max_workers=2) as ex:" not in stream.read_text("utf-8")
    assert "Traceback" not in out + proc.stderr
    table = out[out.index("before and after the fix") :]
    assert re.search(r"verdict\s+FAIL\s+PASS", table), table
    assert re.search(r"caught in the act\s+HD101\s+none caught", table), table
    page = report.read_text(encoding="utf-8")
    for part in ('id="comparison"', 'id="before-timeline"', 'id="after-timeline"',
                 'id="before-diagnosis"', 'id="fix"', 'id="after-summary"'):  # fmt: skip
        assert part in page, part
    cells = dict(re.findall(r'<td data-run="(\d)" data-key="verdict">(\w+)</td>', page))
    assert cells == {"0": "FAIL", "1": "PASS"}
    fix = page[page.index('id="fix"') :]
    assert re.search(r'<span class="del">-\s+with ThreadPoolExecutor\(max_workers=2\) as ex:', fix)
    assert "HD101" in page[page.index('id="before-diagnosis"') : page.index('id="fix"')]
    assert server_logs(tmpdir) == []


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


def test_a_server_that_printed_nothing_says_so(tmp_path: Path) -> None:
    """A server that exits silently: "It printed nothing", not "Its last output:" over nothing."""
    port = str(free_port())
    proc = doctor_in(
        tmp_path, "--stream", "/s", "--ready-timeout", "5", "--",
        sys.executable, "-c", "import sys; sys.exit(3)", "--port", port, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "exited with code 3" in proc.stderr
    assert "It printed nothing" in proc.stderr and "Its last output" not in proc.stderr
    assert server_logs(tmp_path) == []  # an empty log is not worth keeping


def test_a_failing_server_keeps_its_log_and_names_it(tmp_path: Path) -> None:
    """A server that printed and died: its last lines, and the kept log's path, are shown."""
    port = str(free_port())
    script = "import sys; print('cannot open the database', flush=True); sys.exit(4)"
    proc = doctor_in(
        tmp_path, "--stream", "/s", "--ready-timeout", "5", "--",
        sys.executable, "-c", script, "--port", port, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    logs = server_logs(tmp_path)
    assert len(logs) == 1, logs
    assert f"Its last output (all of it is in {logs[0]}):" in proc.stderr
    assert "cannot open the database" in proc.stderr
    assert "cannot open the database" in logs[0].read_text(encoding="utf-8")


@pytest.mark.e2e
def test_a_doctor_run_leaves_no_server_log(tmp_path: Path) -> None:
    """A run that ends normally (the fixed app passes) removes the server's log from TMPDIR."""
    port = free_port()
    proc = doctor_in(
        tmp_path, "--stream", "/news/stream", "--clients", "2", "--duration", "2",
        "--", sys.executable, "-m", "uvicorn", "api.main:fixed_app", "--app-dir", str(APP_DIR),
        "--port", str(port), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert server_logs(tmp_path) == []


@pytest.mark.e2e
def test_doctor_reports_requests_stuck_on_a_healthy_loop(tmp_path: Path) -> None:
    """GIVEN the lock-order deadlock app on the host's Python WHEN doctor sends both routes as
    --request THEN exit 1 with the stuck-request reason, a note that the tasks need 3.14 or
    the runtime, and the report's comparison counts the stuck requests; no stream clients ran."""
    port = free_port()
    report = tmp_path / "doctor.html"
    proc = run_hangdoctor(
        "doctor", "--request", "POST /transfer", "--request", "POST /close-day",
        "--request-timeout", "1.5", "--duration", "3", "--baseline", "0.5", "--fix",
        "--report", str(report),
        "--", sys.executable, "-m", "uvicorn", "stuck_app:app",
        "--app-dir", str(ROOT / "tests" / "py314" / "apps"), "--port", str(port),
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    assert re.search(
        r"\d+ of \d+ POST /transfer requests got no answer within 1\.5 s while /health answered "
        r"in [\d.]+ ms: requests stuck on a healthy loop",
        text,
    ), text
    assert "can be read from outside only on CPython 3.14+" in text
    assert "no stream clients" in text
    page = report.read_text(encoding="utf-8")
    cell = re.search(r'<td data-run="0" data-key="requests_stuck">(\d+) of (\d+)</td>', page)
    assert cell is not None and int(cell.group(1)) >= 2, page[:2000]


def test_doctor_needs_a_stream_or_a_request() -> None:
    """With neither --stream nor --request there is nothing to probe: a usage error."""
    proc = run_hangdoctor("doctor", "--", sys.executable, "-c", "pass", "--port", "9")
    assert proc.returncode == 2
    assert "--stream PATH" in proc.stderr and "--request PATH" in proc.stderr
