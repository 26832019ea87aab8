"""`probe --request` and `doctor --request` catch requests stuck on a healthy 3.14 loop.

The lock-order deadlock app (tests/py314/apps/stuck_app.py) runs under Debian's
python3.14 in the cached root. The host's hangdoctor sends `POST /transfer` and
`POST /close-day` with a deadline beside its health checks; when they pass it while
/health answers, it reads the server's tasks from outside right then and must name
HD601 in its text, its JSON and its report, as doctor must in its own output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT, run_hangdoctor
from tests.py314.conftest import CHECKOUT_BIND, Start314, Target
from tests.py314.root import INSIDE_REPO, Py314Root

from hangdoctor.probe.server import free_port

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "stuck_app.py"
REQUESTS = ("--request", "POST /transfer", "--request", "POST /close-day")
QUICK = ("--request-timeout", "2", "--duration", "5", "--baseline", "0.5")


def _line(marker: str) -> int:
    lines = APP.read_text(encoding="utf-8").splitlines()
    (hit,) = [n for n, text in enumerate(lines, 1) if marker in text]
    return hit


def _argv(python: str, port: int) -> list[str]:
    return [
        python, "-m", "uvicorn", "stuck_app:app", "--app-dir", "tests/py314/apps",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def test_probe_reads_the_deadlock_from_outside(start314: Start314, tmp_path: Path) -> None:
    """GIVEN the deadlock app on 3.14 WHEN probed with both routes as --request THEN exit 1,
    the stuck requests are the reason, and the diagnosis read at that moment is HD601 at the
    app's lines, in the JSON and in the report; /health never timed out."""
    target: Target = start314(_argv)
    report = tmp_path / "probe.html"
    out = run_hangdoctor(
        "probe", target.base_url, *REQUESTS, *QUICK, "--format", "json", "--report", str(report),
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "fail" and data["exit_code"] == 1
    assert data["summary"]["timeouts"] == 0
    transfer, close_day = data["request_stats"]
    assert transfer["request"] == "POST /transfer" and transfer["stuck"] >= 1
    assert close_day["stuck"] >= 1
    assert "requests stuck on a healthy loop" in transfer["message"]
    assert data["diagnosis_kind"] == "stuck"
    assert data["pid"] == target.pid
    diagnosis = data["diagnosis"]
    assert diagnosis["verdict"] == "stuck", diagnosis
    (found,) = [f for f in diagnosis["findings"] if f["code"] == "HD601"]
    assert found["file"].endswith("stuck_app.py")
    waits = {_line("transfer waits for the ledger"), _line("close_day waits for the accounts")}
    assert found["line"] in waits
    assert len(found["cycle"]) == 2
    stuck_at = min(r["t_s"] for r in data["requests"] if r["stuck"])
    assert stuck_at < data["diagnosis_t_s"]  # caught after the first stuck request was sent
    page = report.read_text(encoding="utf-8")
    assert 'data-code="HD601"' in page
    assert 'data-request="POST /transfer"' in page and 'class="request stuck"' in page


def test_probe_text_names_the_cycle(start314: Start314) -> None:
    target: Target = start314(_argv)
    out = run_hangdoctor("probe", target.base_url, *REQUESTS, *QUICK, timeout=120)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr
    text = " ".join(out.stdout.split())
    assert "POST /transfer requests got no answer within 2 s while /health answered in" in text
    assert "Caught in the act at t=" in text and "while requests were stuck" in text
    assert " STUCK " in text and "HD601 await-deadlock" in text
    assert "none of them can go on" in text


def test_doctor_reports_the_deadlock_and_says_the_fix_is_manual(
    py314_root: Py314Root, newsroom_python: str
) -> None:
    """`doctor --fix` starts the 3.14 server itself, catches HD601 with the same findings,
    and, there being no automatic fix for it, shows the catalog's fix and says it is manual."""
    port = free_port()
    server = py314_root.run_argv(
        _argv(newsroom_python, port), binds=(CHECKOUT_BIND,), wd=INSIDE_REPO
    )
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "hangdoctor", "doctor", *REQUESTS, *QUICK, "--ready-timeout", "60",
         "--fix", "--", *server],
        capture_output=True, text=True, timeout=180, cwd=str(ROOT), env=env, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:] + proc.stderr[-2000:]
    text = " ".join(out.split())
    assert "requests stuck on a healthy loop" in text
    assert "HD601 await-deadlock" in text and "none of them can go on" in text
    assert "Recommended fix for HD601 (await-deadlock): Take locks in one global order" in text
    assert "There is no automatic fix for HD601" in text and "The fix is manual" in text
    assert "probe after the fix" not in out
    assert "Traceback" not in out + proc.stderr
