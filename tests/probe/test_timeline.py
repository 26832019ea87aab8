"""The probe's numbers: one definition of the percentiles, stall windows, the baseline check.

`summarize` is a pure function of the recorded samples, so these tests give
it timelines of the shapes the issue saw (97 timeouts of 100; stalls back to
back; a loop 70 times slower than alone yet under the threshold) and check
what the terminal says about them.
"""

from __future__ import annotations

import io

from rich.console import Console

from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    ProbeVerdict,
    summarize,
)
from hangdoctor.report.probe_terminal import render_summary, verdict_reasons

CONFIG = ProbeConfig(url="http://127.0.0.1:8000", streams=("/s",), health="/health", clients=10)


def _result(
    health: list[HealthSample],
    baseline: list[HealthSample] | None = None,
    config: ProbeConfig = CONFIG,
) -> ProbeResult:
    base = tuple(baseline or ())
    summary, stalls, verdict = summarize(config, tuple(health), (), base)
    return ProbeResult(config, 1.7e9, 20.0, tuple(health), (), stalls, summary, verdict,
                       baseline=base)  # fmt: skip


def _text(result: ProbeResult) -> str:
    console = Console(file=io.StringIO(), width=200, no_color=True)
    console.print(render_summary(result, width=200))
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _answered(t: float, latency: float) -> HealthSample:
    return HealthSample(t, latency, 200)


def _timeout(t: float) -> HealthSample:
    return HealthSample(t, 2.003, None, timed_out=True)


def test_every_percentile_counts_the_timeouts_at_the_deadline() -> None:
    """97 timeouts of 100: p50 and p90 are the deadline too, not the three quick answers."""
    health = [_answered(i * 0.1, 0.0023) for i in range(3)]
    health += [_timeout(0.3 + i * 0.1) for i in range(97)]
    s = _result(health).summary
    assert s.p50_s == s.p90_s == s.p99_s == s.max_s == CONFIG.health_timeout_s
    assert s.timeouts == 97
    text = _text(_result(health))
    assert "one with no answer counts at the deadline (2.00 s)" in text


def test_an_error_counts_at_the_deadline() -> None:
    """A request that failed (reset, refused) got no answer: it counts at the deadline."""
    health = [_answered(i * 0.1, 0.002) for i in range(9)]
    health.append(HealthSample(0.9, 0.001, None, error="connection reset by the server"))
    s = _result(health).summary
    assert s.max_s == CONFIG.health_timeout_s and s.errors == 1


def test_stall_windows_end_at_the_next_prompt_answer() -> None:
    """Two stalls with a prompt answer between them are two windows that do not overlap."""
    health = [_answered(0.0, 0.002)]
    health += [_answered(1.0 + i * 0.1, 1.0 - i * 0.1) for i in range(5)]  # all end at 2.0
    health += [_answered(1.5 + i * 0.1, 0.002) for i in range(3)]  # prompt again
    health += [_answered(1.8 + i * 0.1, 0.9 - i * 0.1) for i in range(4)]  # all end at 2.7
    health += [_answered(2.2, 0.002)]
    stalls = _result(health).stalls
    assert [(w.t_start, w.late) for w in stalls] == [(1.0, 5), (1.8, 4)]
    assert stalls[0].t_end <= stalls[1].t_start
    assert stalls[0].t_end == 1.5 + 0.002


def test_a_long_window_says_the_slowest_single_request() -> None:
    """Late requests back to back for 10 s read as a 10 s window whose worst request took 2 s."""
    health = [_answered(i * 0.1, 1.97 - (i % 10) * 0.1) for i in range(100)]
    result = _result(health, config=CONFIG)
    assert len(result.stalls) == 1
    window = result.stalls[0]
    assert window.t_end - window.t_start > 9.5 and window.worst_latency_s == 1.97
    text = _text(result)
    assert "no health request was answered within 500 ms" in text
    assert "the slowest single one took 1.97 s" in text


def test_a_run_far_slower_than_its_baseline_fails() -> None:
    """p99 149 ms is under the 500 ms threshold but 15 times a 2.2 ms baseline: FAIL, said so."""
    baseline = [_answered(i * 0.1, 0.0022) for i in range(10)]
    health = [_answered(i * 0.1, 0.149) for i in range(100)]
    result = _result(health, baseline)
    assert result.verdict is ProbeVerdict.FAIL
    assert result.summary.baseline_p99_s == 0.0022 and result.summary.slowdown == 14.9
    reasons = "; ".join(verdict_reasons(result))
    assert (
        "p99 149 ms is 15 times the baseline p99 (2.2 ms, counted as 10 ms) measured before "
        "the streams started" in reasons
    )
    assert "--max-slowdown" in reasons
    lenient = ProbeConfig(**{**CONFIG.__dict__, "max_slowdown": 20.0})
    assert _result(health, baseline, lenient).verdict is ProbeVerdict.PASS


def test_a_tiny_baseline_does_not_make_noise_a_slowdown() -> None:
    """0.4 ms alone and 6 ms under load is not a slowdown: baselines count as at least 10 ms."""
    baseline = [_answered(i * 0.1, 0.0004) for i in range(10)]
    health = [_answered(i * 0.1, 0.006) for i in range(100)]
    result = _result(health, baseline)
    assert result.verdict is ProbeVerdict.PASS and result.summary.slowdown == 0.6
