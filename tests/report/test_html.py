"""The HTML report's diagnosis section: what it says about the locals it shows."""

from __future__ import annotations

import pytest

from hangdoctor.model import Diagnosis
from hangdoctor.probe.timeline import HealthSample, ProbeConfig, ProbeResult, summarize
from hangdoctor.report.html import render_probe_html
from tests.report.conftest import with_user_locals


def _result(diagnosis: Diagnosis) -> ProbeResult:
    config = ProbeConfig(url="http://127.0.0.1:8000", streams=("/news/stream",), health="/health")
    health = tuple(HealthSample(i * 0.1, 0.002, 200) for i in range(20))
    summary, stalls, verdict = summarize(config, health, ())
    return ProbeResult(
        config=config,
        started_at=1_700_000_000.0,
        elapsed_s=2.0,
        health=health,
        streams=(),
        stalls=stalls,
        summary=summary,
        verdict=verdict,
        diagnosis=diagnosis,
        diagnosis_t=0.5,
        pid=3731,
    )


@pytest.mark.parametrize(
    ("redacted", "heading", "value"),
    [
        (True, "(secrets redacted)", "&lt;redacted&gt;"),
        (False, "(not redacted: --show-secrets)", "nr-0123456789abcdef"),
    ],
)
def test_locals_heading_says_whether_they_were_redacted(
    blocked: Diagnosis, redacted: bool, heading: str, value: str
) -> None:
    """Locals are headed "secrets redacted" only when they were; shown as captured, the
    heading says so instead."""
    page = render_probe_html(_result(with_user_locals(blocked, redacted=redacted)))
    title = f"<h4>Locals of <code>news_stream.&lt;locals&gt;.gen</code> {heading}</h4>"
    assert title in page
    assert value in page
