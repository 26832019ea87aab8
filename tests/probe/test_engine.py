"""The probe against the newsroom app under uvicorn: the hang is reproduced and caught in the act.

The buggy /news/stream freezes the whole service for NEWSROOM_UPSTREAM_DELAY
(20 s) after a client drops it; the fixed one does not. Real uvicorn processes,
real stream clients, the real py-spy.
"""

from __future__ import annotations

import asyncio

import pytest
from tests.conftest import ServerFactory, expected
from tests.probe._servers import TinyServer, quick_config

from hangdoctor.model import Verdict
from hangdoctor.probe.engine import ProbeProgress, probe, run_probe
from hangdoctor.probe.timeline import ProbeResult, ProbeVerdict

pytestmark = pytest.mark.e2e


def assert_hd101_caught(result: ProbeResult) -> None:
    """The run failed, and the capture taken during the stall names HD101 at the marked line."""
    assert result.verdict is ProbeVerdict.FAIL
    assert result.summary.timeouts > 0
    assert result.stalls
    assert result.diagnosis is not None, result.notes
    assert result.diagnosis.verdict is Verdict.BLOCKED, result.diagnosis
    findings = [f for f in result.diagnosis.findings if f.code == "HD101"]
    assert findings, [f.code for f in result.diagnosis.findings]
    exp = expected("HD101")
    assert findings[0].file.endswith(exp.file), findings[0].file
    assert findings[0].line == exp.line
    # Caught while waiting: the capture started before the first late request came back.
    late = next(h for h in result.health if h.latency_s >= result.config.stall_threshold_s)
    assert result.diagnosis_t is not None
    assert late.t < result.diagnosis_t < late.t + late.latency_s


def assert_passes(result: ProbeResult) -> None:
    """The run passed with real churn: streams were opened and dropped, no request timed out."""
    assert result.verdict is ProbeVerdict.PASS, (result.summary, result.stalls)
    assert result.summary.timeouts == 0
    assert result.summary.streams_aborted >= result.config.clients
    assert result.summary.events >= result.summary.streams_aborted
    assert result.diagnosis is None


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_buggy_stream_fails_and_is_diagnosed(newsroom: ServerFactory, loop: str) -> None:
    """Dropped streams freeze the buggy app; the probe fails and catches HD101 in the act."""
    server = newsroom(loop=loop)
    result = probe(quick_config(server.base_url))
    assert_hd101_caught(result)
    assert result.pid == server.pid


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_fixed_stream_passes(newsroom: ServerFactory, loop: str) -> None:
    """The fixed app keeps /health fast while streams are opened and dropped."""
    server = newsroom(app="api.main:fixed_app", loop=loop)
    assert_passes(probe(quick_config(server.base_url)))


def test_timeline_and_progress(newsroom: ServerFactory) -> None:
    """Every health tick and stream lands in the timeline; progress reports arrive while it runs."""
    server = newsroom(app="api.main:fixed_app")
    seen: list[ProbeProgress] = []
    config = quick_config(server.base_url, clients=3, duration_s=2.0, health_interval_s=0.2)
    result = asyncio.run(run_probe(config, capture=False, on_progress=seen.append))
    starts = [h.t for h in result.health]
    assert len(starts) == 10  # one per tick of a fixed schedule: 0, 0.2, ... 1.8
    assert starts == sorted(starts)
    assert all(h.status == 200 for h in result.health)
    assert {s.client for s in result.streams} == {0, 1, 2}
    assert all(s.t_open <= (s.t_end or 0.0) for s in result.streams)
    assert any(s.aborted for s in result.streams)
    assert seen and seen[-1].done and not any(p.done for p in seen[:-1])
    assert seen[-1].health_requests == len(result.health)
    assert any(0 < p.t < config.duration_s and p.streams_open > 0 for p in seen)
    assert "catch-in-the-act is off (--no-capture)" in result.notes


def test_health_only(newsroom: ServerFactory) -> None:
    """clients=0 times health alone: no stream is opened, the fixed app passes."""
    server = newsroom(app="api.main:fixed_app")
    result = probe(quick_config(server.base_url, clients=0, streams=(), duration_s=1.0))
    assert result.verdict is ProbeVerdict.PASS
    assert result.streams == ()
    assert result.summary.requests >= 5


def test_a_stream_the_server_ends_is_not_retried_in_a_tight_loop() -> None:
    """A stream that ends with no event counts as failed and is retried after a pause, not spun."""
    with TinyServer() as server:
        config = quick_config(server.url, streams=("/sse-empty",), clients=2, duration_s=1.0)
        result = probe(config)
    assert result.streams
    assert all(s.error == "the server closed the stream before any event" for s in result.streams)
    assert not any(s.aborted for s in result.streams)
    assert len(result.streams) <= 2 * 12  # at most one attempt per 0.1 s pause per client
    assert result.verdict is ProbeVerdict.PASS  # health was fine: failed streams alone do not fail
