"""The probe in the terminal: the end-of-run summary and the plain progress lines of CI logs."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from tests.probe._servers import TinyServer

from hangdoctor.probe.engine import ProbeProgress
from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    StreamRecord,
    summarize,
)
from hangdoctor.report.probe_terminal import LiveProgress, format_seconds, render_summary

ROOT = Path(__file__).resolve().parents[2]


def run_in_pty(argv: list[str], *, columns: int, timeout: float = 60.0) -> tuple[int, str]:
    """Run `argv` with stdin, stdout and stderr on a real pseudo-terminal; (exit code, output).

    A pipe would make rich fall back to plain lines, which is how the progress bar's
    crash on every real terminal went unseen: only a pty makes `isatty()` true.
    """
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "TERM")}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES="40", FORCE_COLOR="1")
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=str(ROOT), env=env, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end of the terminal
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"{argv} did not finish within {timeout} s")
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


_LIVE_SCRIPT = """
import sys, time
from rich.console import Console
from hangdoctor.probe.engine import ProbeProgress
from hangdoctor.report.probe_terminal import LiveProgress
console = Console(stderr=True)
assert console.is_terminal, "stderr is not a terminal"
with LiveProgress(console) as progress:
    time.sleep(0.3)  # the bar is drawn before the first report, with no total yet
    for step in range(1, 6):
        progress(ProbeProgress(step * 0.4, 2, step, 1, 2, 0, 0.004, 0.002, 5, 9, 4, 0, False, 0,
                               step == 5))
        time.sleep(0.1)
print("live progress done")
"""


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_live_progress_on_a_real_terminal(columns: int) -> None:
    """On a pty the rich progress bar draws before the first report (no total) without crashing."""
    code, out = run_in_pty([sys.executable, "-c", _LIVE_SCRIPT], columns=columns)
    assert code == 0, out
    assert "TypeError" not in out and "Traceback" not in out
    assert "live progress done" in out
    assert "\x1b[" in out  # rich really drew on a terminal, with escape sequences


@pytest.mark.e2e
def test_probe_command_on_a_real_terminal() -> None:
    """`hangdoctor probe` in a terminal shows its live bar and finishes with the verdict."""
    with TinyServer() as server:
        code, out = run_in_pty(
            [sys.executable, "-m", "hangdoctor", "probe", server.url, "--stream", "/sse",
             "--clients", "2", "--duration", "2", "--abort-after", "0.2-0.5", "--seed", "1"],
            columns=80,
        )  # fmt: skip
    assert "failed unexpectedly" not in out, out
    assert code == 0, out
    assert "PASS" in out and "probe" in out


def make_result(*, stalled: bool) -> ProbeResult:
    config = ProbeConfig(
        url="http://127.0.0.1:8000",
        streams=("/news/stream",),
        health="/health",
        clients=2,
        duration_s=2.0,
        headers=(("Authorization", "Bearer s3cret"),),
    )
    health = [HealthSample(i * 0.1, 0.002, 200) for i in range(20)]
    if stalled:
        health[5:9] = [HealthSample(0.5 + i * 0.1, 2.0, None, timed_out=True) for i in range(4)]
    streams = (
        StreamRecord(0, "/news/stream", 0.0, 0.01, 0.4, 1, 200, aborted=True),
        StreamRecord(1, "/news/stream", 0.0, None, 2.0, 0, None, error="no response headers"),
    )
    summary, stalls, verdict = summarize(config, tuple(health), streams)
    return ProbeResult(
        config, 1.7e9, 2.0, tuple(health), streams, stalls, summary, verdict, notes=("a note",)
    )


def _text(result: ProbeResult) -> str:
    console = Console(file=io.StringIO(), width=120, no_color=True)
    console.print(render_summary(result, width=120))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_summary_of_a_failed_run() -> None:
    """A failed run shows FAIL, why, the stall window, stream counts and the notes."""
    text = _text(make_result(stalled=True))
    assert " FAIL " in text
    assert "4 of 20 health requests timed out" in text
    assert "longest stall" in text and "t=0.5 s" in text
    assert "opened 1 · aborted 1 · failed 1" in text
    assert "note: a note" in text


def test_summary_of_a_passed_run() -> None:
    """A passed run shows PASS with its p99 under the threshold and no stall."""
    text = _text(make_result(stalled=False))
    assert " PASS " in text and "under 500 ms" in text
    assert "none (no health request took 500 ms or more)" in text


def test_format_seconds() -> None:
    """Latencies read as people say them."""
    assert format_seconds(0.0021) == "2.1 ms"
    assert format_seconds(0.12) == "120 ms"
    assert format_seconds(2.0) == "2.00 s"
    assert format_seconds(None) == "-"


def test_plain_progress_is_short() -> None:
    """Off a terminal, progress is one line every 5 s of the run, none for the final report."""
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    base = ProbeProgress(0, 20, 0, 0, 0, 0, None, None, 3, 3, 0, 0, False, 0, False)
    with LiveProgress(console) as progress:
        for tenth in range(0, 201, 2):  # a report every 0.2 s, as the engine sends them
            t = tenth / 10
            progress(
                ProbeProgress(
                    t, 20, int(t * 10), 1, 2, 0, 0.004, 0.002, 5, 9, 4, 0, t > 19, 1, False
                )
            )
        progress(base.__class__(**{**base.__dict__, "t": 20.0, "done": True}))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4  # at 5, 10, 15 and 20 s
    assert lines[0].startswith("probe    5/20 s: health 50, p99 4.0 ms, timeouts 2")
    assert "STALL" in lines[-1]
