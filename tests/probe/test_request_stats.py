"""`--request`: what counts as stuck, the figures per path, and how each output says it.

`with_stuck` and `summarize_requests` are pure functions of the recorded samples,
so these tests hand them timelines of the shapes that matter: requests that time
out while health answers in milliseconds (stuck on a healthy loop), requests that
time out while health is stalled too (not stuck: the loop itself was slow), and
requests that answer in time.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from rich.console import Console

from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.target import parse_request, parse_target
from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    ProbeVerdict,
    RequestSample,
    health_was_fine,
    summarize,
    summarize_requests,
    with_stuck,
)
from hangdoctor.report.probe_json import probe_to_json, probe_to_jsonable
from hangdoctor.report.probe_terminal import render_summary, verdict_reasons

CONFIG = ProbeConfig(
    url="http://127.0.0.1:8000",
    streams=(),
    health="/health",
    clients=0,
    duration_s=10.0,
    requests=("POST /transfer", "GET /orders"),
    request_timeout_s=5.0,
)


def _health(*, stalled: tuple[float, float] | None = None) -> tuple[HealthSample, ...]:
    """Health every 0.1 s for 12 s answering in 2 ms; within `stalled`, timed out at 2 s."""
    out = []
    for i in range(120):
        t = i * 0.1
        if stalled is not None and stalled[0] <= t < stalled[1]:
            out.append(HealthSample(t, 2.0, None, timed_out=True))
        else:
            out.append(HealthSample(t, 0.002, 200))
    return tuple(out)


def _requests() -> tuple[RequestSample, ...]:
    """POST /transfer: 2 answered, then 2 with no answer in 5 s; GET /orders always answers."""
    return (
        RequestSample("POST /transfer", 0.0, 0.05, 200),
        RequestSample("POST /transfer", 0.5, 0.04, 200),
        RequestSample("POST /transfer", 1.0, 5.0, None, timed_out=True),
        RequestSample("POST /transfer", 1.5, 5.0, None, timed_out=True),
        RequestSample("GET /orders", 0.0, 0.003, 200),
        RequestSample("GET /orders", 0.5, 0.004, 200),
    )


def _result(health: tuple[HealthSample, ...]) -> ProbeResult:
    requests = with_stuck(CONFIG, _requests(), health)
    stats = summarize_requests(CONFIG, requests, health)
    summary, stalls, verdict = summarize(CONFIG, health, ())
    if any(r.timeouts for r in stats):
        verdict = ProbeVerdict.FAIL
    return ProbeResult(
        CONFIG, 1.7e9, 11.0, health, (), stalls, summary, verdict,
        request_stats=stats, requests=requests,
    )  # fmt: skip


def _text(result: ProbeResult) -> str:
    console = Console(file=io.StringIO(), width=200, no_color=True)
    console.print(render_summary(result, width=200))
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_a_timeout_while_health_answers_is_stuck() -> None:
    """GIVEN health answering in 2 ms throughout WHEN two requests time out THEN both are stuck,
    the run fails, and the reason names the path, the deadline and the health latency."""
    result = _result(_health())
    transfer, orders = result.request_stats
    assert (transfer.sent, transfer.answered, transfer.timeouts, transfer.stuck) == (4, 2, 2, 2)
    assert transfer.p99_s == transfer.max_s == 5.0  # an unanswered request counts at the deadline
    assert transfer.health_p99_s == pytest.approx(0.002)
    assert transfer.message == (
        "2 of 4 POST /transfer requests got no answer within 5 s while /health answered in "
        "2.0 ms: requests stuck on a healthy loop"
    )
    assert (orders.sent, orders.answered, orders.timeouts, orders.message) == (2, 2, 0, None)
    assert result.verdict is ProbeVerdict.FAIL
    assert transfer.message in verdict_reasons(result)
    assert [r.stuck for r in result.requests] == [False, False, True, True, False, False]


def test_a_timeout_while_health_stalls_too_is_not_stuck() -> None:
    """GIVEN health timing out from 1 s to 4 s WHEN the same requests time out THEN they fail
    the run but are not stuck: the loop itself was slow, a stall's business."""
    result = _result(_health(stalled=(1.0, 4.0)))
    transfer = result.request_stats[0]
    assert transfer.timeouts == 2 and transfer.stuck == 0
    assert transfer.message == (
        "2 of 4 POST /transfer requests got no answer within 5 s, while /health was slow too"
    )
    assert not any(r.stuck for r in result.requests)


def test_health_was_fine_needs_an_answer() -> None:
    """No health request in the span is no evidence that the loop was fine."""
    health = (HealthSample(0.0, 0.002, 200), HealthSample(10.0, 0.002, 200))
    assert not health_was_fine(health, 2.0, 7.0, 0.5)
    assert health_was_fine(health, 0.0, 7.0, 0.5)
    assert not health_was_fine((*health, HealthSample(3.0, 0.6, 200)), 0.0, 7.0, 0.5)


def test_terminal_shows_a_row_per_request_path() -> None:
    text = _text(_result(_health()))
    assert " FAIL " in text and "requests stuck on a healthy loop" in text
    row = next(line for line in text.splitlines() if line.startswith("POST /transfer"))
    assert row.split()[-5:] == ["4", "2", "2", "2", "0"]  # sent answered timeouts stuck errors
    assert "POST /transfer, GET /orders every 500 ms (deadline 5 s)" in text
    assert "streams  opened" not in text  # no stream clients: nothing to count


def test_json_carries_the_requests_and_their_figures() -> None:
    result = _result(_health())
    data = probe_to_jsonable(result, exit_code=1)
    assert json.loads(probe_to_json(result, exit_code=1)) == data
    keys = list(data)
    assert keys.index("request_stats") == keys.index("stalls") + 1
    assert keys.index("requests") == keys.index("streams") + 1
    assert data["diagnosis_kind"] is None
    stats = data["request_stats"][0]
    assert stats["request"] == "POST /transfer" and stats["stuck"] == 2
    assert set(stats) == {
        "request", "sent", "answered", "ok", "timeouts", "errors", "stuck", "p50_s", "p99_s",
        "max_s", "health_p99_s", "message",
    }  # fmt: skip
    assert data["requests"][2] == {
        "request": "POST /transfer", "t_s": 1.0, "latency_s": 5.0, "status": None,
        "timed_out": True, "error": None, "stuck": True,
    }  # fmt: skip
    assert data["config"]["requests"] == ["POST /transfer", "GET /orders"]
    assert data["config"]["request_timeout_s"] == 5.0
    assert data["config"]["request_interval_s"] == 0.5


def test_html_draws_a_lane_per_request_path() -> None:
    from hangdoctor.report.html import render_probe_html, verdict_reason

    result = _result(_health())
    page = render_probe_html(result)
    assert 'data-request-lanes="2"' in page
    lanes = re.findall(r'<g class="request-lane" data-request="([^"]+)" data-sent="(\d+)" '
                       r'data-stuck="(\d+)">', page)  # fmt: skip
    assert lanes == [("POST /transfer", "4", "2"), ("GET /orders", "2", "0")]
    assert page.count('class="request stuck"') == 2 + 1  # two bars and the legend's swatch
    cell = re.search(r'data-request="POST /transfer" data-key="stuck">(\d+)<', page)
    assert cell is not None and cell.group(1) == "2"
    assert "requests stuck on a healthy loop" in verdict_reason(result)


def test_html_escapes_the_request_path() -> None:
    from hangdoctor.report.html import render_probe_html

    result = _result(_health())
    name = 'GET /x?<script>alert(1)</script>"'
    config = replace(result.config, requests=(name,))
    requests = tuple(replace(r, request=name) for r in result.requests)
    stats = tuple(replace(s, request=name) for s in result.request_stats[:1])
    page = render_probe_html(replace(result, config=config, requests=requests, request_stats=stats))
    assert "<script>alert(1)" not in page


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ("/orders", "GET /orders"),
        ("orders", "GET /orders"),
        ("POST /transfer", "POST /transfer"),
        ("post  /transfer", "POST /transfer"),
        ("DELETE http://127.0.0.1:8000/x?y=1", "DELETE /x?y=1"),
    ],
)
def test_parse_request(given: str, parsed: str) -> None:
    endpoint, _ = parse_target("http://127.0.0.1:8000")
    assert parse_request(given, endpoint) == parsed


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ("POST /a /b", "is not PATH or 'METHOD PATH'"),
        ("P0ST /a", "is not an HTTP method"),
        ("GET http://example.com/x", "only sends traffic to the URL's host and port"),
        ("", "is not PATH or 'METHOD PATH'"),
    ],
)
def test_parse_request_refuses(given: str, needle: str) -> None:
    endpoint, _ = parse_target("http://127.0.0.1:8000")
    with pytest.raises(ProbeError) as info:
        parse_request(given, endpoint)
    assert needle in f"{info.value.message} {info.value.remedy}"
