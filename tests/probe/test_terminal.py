"""The probe in the terminal: the end-of-run summary and the plain progress lines of CI logs."""

from __future__ import annotations

import io

from rich.console import Console

from hangdoctor.probe.engine import ProbeProgress
from hangdoctor.probe.terminal import LiveProgress, format_seconds, render_summary
from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    StreamRecord,
    summarize,
)


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
