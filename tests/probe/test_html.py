"""The probe's HTML report: self-contained, escaped, and drawn right in a real headless Chromium.

Most results here are built as plain data (the renderer is under test, not the
probe); one comes from a real probe run against the buggy newsroom app.
"""

from __future__ import annotations

import html
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.browser import PageWatch, launch
from tests.conftest import ROOT, ServerFactory, expected
from tests.report.conftest import OUTER, app, std

from hangdoctor.catalog import get_rule
from hangdoctor.model import (
    Diagnosis,
    Finding,
    Frame,
    Local,
    LoopKind,
    LoopReport,
    LoopState,
    Verdict,
    WaitTarget,
)
from hangdoctor.probe.engine import probe
from hangdoctor.probe.timeline import (
    HealthSample,
    ProbeConfig,
    ProbeResult,
    ProbeVerdict,
    StreamRecord,
    summarize,
)
from hangdoctor.report.html import render_probe_html, verdict_reason, write_probe_html

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

ARTIFACTS = ROOT / "test-artifacts"
URL = "http://127.0.0.1:8000"
HOSTILE = "<script>alert(1)</script>"
STALLS = ((1.4, 9.8), (12.5, 17.0))  # when the synthetic server does not answer
DURATION = 20.0


def _finding(source: str = "with ThreadPoolExecutor(max_workers=2) as ex:") -> Finding:
    stack = (
        std("Thread._wait_for_tstate_lock", "threading.py", 1167),
        std("Thread.join", "threading.py", 1147),
        std("ThreadPoolExecutor.shutdown", "concurrent/futures/thread.py", 239),
        std("Executor.__exit__", "concurrent/futures/_base.py", 647),
        app("news_stream.<locals>.gen", "api/routes/stream.py", 35),
        *OUTER,
    )
    return Finding(
        code="HD101",
        message=(
            "Leaving the `with` executor block at api/routes/stream.py:35 runs "
            "shutdown(wait=True) on the loop; it waits for worker thread ThreadPoolExecutor-0_0."
        ),
        file="/srv/app/api/routes/stream.py",
        line=35,
        function="news_stream.<locals>.gen",
        pid=3731,
        thread="MainThread",
        tid=3731,
        blocked_for_s=1.02,
        state=LoopState.BLOCKED,
        source=source,
        waits_for=WaitTarget(
            description="worker thread ThreadPoolExecutor-0_0 (tid 3736) in fetch_news",
            thread_name="ThreadPoolExecutor-0_0",
            tid=3736,
            function="fetch_news",
            file="/srv/app/api/routes/stream.py",
            line=25,
            source="time.sleep(delay)  # the slow upstream call",
        ),
        stack=stack,
        user_frame_index=4,
    )


def _diagnosis(finding: Finding) -> Diagnosis:
    return Diagnosis(
        verdict=Verdict.BLOCKED,
        loops=(LoopReport(3731, 3731, "MainThread", LoopKind.ASYNCIO, LoopState.BLOCKED, 1.02),),
        findings=(finding,),
        pids=(3731,),
        samples=3,
        sampled_for_s=1.02,
    )


def _stalled_until(t: float, stalls: tuple[tuple[float, float], ...]) -> float | None:
    return next((end for start, end in stalls if start <= t < end), None)


def synthetic(
    *, stalls: tuple[tuple[float, float], ...] = STALLS, diagnosis: Diagnosis | None = None
) -> ProbeResult:
    """A 20 s run shaped like the buggy newsroom app: /health stalls while a stream is torn down."""
    cfg = ProbeConfig(url=URL, streams=("/news/stream",), health="/health", duration_s=DURATION)
    rng = random.Random(7)
    health: list[HealthSample] = []
    for i in range(int(DURATION / cfg.health_interval_s)):
        t = i * cfg.health_interval_s
        end = _stalled_until(t, stalls)
        if end is not None and end - t >= cfg.health_timeout_s:
            health.append(HealthSample(t, cfg.health_timeout_s, None, timed_out=True))
        elif end is not None:
            health.append(HealthSample(t, end - t + 0.002, 200))
        else:
            health.append(HealthSample(t, rng.uniform(0.0008, 0.004), 200))
    streams: list[StreamRecord] = []
    for client in range(cfg.clients):
        t = rng.uniform(0, 0.3)
        while t < DURATION:
            opened = _stalled_until(t, stalls) or t
            hold = rng.uniform(cfg.abort_min_s, cfg.abort_max_s)
            if client == 3 and stalls and abs(t - stalls[0][0]) < 3:
                streams.append(StreamRecord(client, "/news/stream", t, t_end=t + 2.0, error="EOF"))
                t += 2.0
                continue
            end = min(opened + hold, DURATION)
            streams.append(
                StreamRecord(client, "/news/stream", t, opened + 0.01, end, 1, 200, aborted=True)
            )
            t = end + 0.05
    summary, windows, verdict = summarize(cfg, tuple(health), tuple(streams))
    return ProbeResult(
        config=cfg,
        started_at=1_700_000_000.0,
        elapsed_s=DURATION,
        health=tuple(health),
        streams=tuple(streams),
        stalls=windows,
        summary=summary,
        verdict=verdict,
        diagnosis=diagnosis,
        diagnosis_t=stalls[0][0] + cfg.stall_threshold_s if diagnosis and stalls else None,
        pid=3731,
        notes=("The capture started when a health request passed 500 ms.",),
    )


def failing() -> ProbeResult:
    return synthetic(diagnosis=_diagnosis(_finding()))


def health_only() -> ProbeResult:
    """`clients=0`: health timing only, as when a browser is the stream client."""
    result = synthetic(stalls=((2.0, 5.0),))
    cfg = replace(result.config, streams=(), clients=0)
    summary, stalls, verdict = summarize(cfg, result.health, ())
    return replace(result, config=cfg, streams=(), summary=summary, stalls=stalls, verdict=verdict)


def hostile() -> ProbeResult:
    """Every string the target controls carries markup that must not run or render."""
    finding = _finding(source=f"x = '{HOSTILE}'")
    finding = replace(
        finding,
        message=f"message {HOSTILE}",
        file=f"/srv/<b>app</b>/{HOSTILE}.py",
        function=f"gen<img src=x onerror=alert(2)>{HOSTILE}",
        stack=(
            Frame(
                f"f{HOSTILE}",
                f"/srv/{HOSTILE}.py",
                3,
                locals=(Local("token", f"'{HOSTILE}'"),),
            ),
            *finding.stack,
        ),
        user_frame_index=0,
    )
    diagnosis = replace(_diagnosis(finding), notes=(f"note {HOSTILE}",))
    result = synthetic(diagnosis=diagnosis)
    cfg = replace(
        result.config,
        url=f'{URL}/"><script>alert(3)</script>',
        streams=(f"/s?{HOSTILE}",),
        health=f"/h{HOSTILE}",
    )
    streams = tuple(replace(s, error=HOSTILE) if s.error else s for s in result.streams)
    return replace(result, config=cfg, streams=streams, notes=(HOSTILE,))


class _Text(HTMLParser):
    """The text of the elements matching a class, as a browser would show it."""

    def __init__(self, cls: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cls = cls
        self.depth = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self.depth:
            self.depth += 1
        elif self.cls in classes:
            self.depth = 1
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.texts[-1] += data


def texts(page: str, cls: str) -> list[str]:
    parser = _Text(cls)
    parser.feed(page)
    return parser.texts


# --- the string -------------------------------------------------------------------------------


def test_report_needs_no_network() -> None:
    """No script, stylesheet link, image or font is loaded; the only URL is the target's."""
    page = render_probe_html(failing())
    for match in re.finditer(r"https?://[^\s<\"']*", page):
        assert match.group(0).startswith(URL), match.group(0)
    assert re.search(r"<script|<link|<img|<iframe|@import|url\(|\ssrc=", page, re.I) is None
    assert "<svg" in page and 'id="timeline"' in page


def test_everything_from_the_target_is_escaped() -> None:
    """Source lines, paths, functions, reprs, URLs and notes show as text, never as markup."""
    page = render_probe_html(hostile())
    assert HOSTILE not in page
    assert "<b>app</b>" not in page and "<img" not in page
    assert "alert(3)</script>" not in page
    assert html.escape(HOSTILE) in page
    source = texts(page, "source")
    assert source[0] == f"35x = '{HOSTILE}'"


def test_chart_marks_match_the_run() -> None:
    """One dot per answered request, one cross per timeout, one shaded span per stall."""
    result = failing()
    page = render_probe_html(result)
    points = sum(not h.timed_out for h in result.health)
    assert result.summary.timeouts > 0 and len(result.stalls) == len(STALLS)
    assert page.count('<circle class="health-point') == points
    assert page.count('<path class="health-timeout"') == result.summary.timeouts
    assert page.count('<rect class="stall"') == len(result.stalls)
    assert page.count('<line class="stream-open"') == result.summary.streams_opened
    assert page.count('<line class="stream-abort"') == result.summary.streams_aborted
    assert page.count('<line class="stream-fail"') == result.summary.streams_failed > 0
    assert f'data-points="{points}" data-timeouts="{result.summary.timeouts}"' in page
    assert page.count('class="capture"') == 1


def test_health_only_run_draws_no_stream_lanes() -> None:
    """With no stream clients the chart has no stream lanes and the facts say health only."""
    result = health_only()
    page = render_probe_html(result)
    assert result.summary.timeouts > 0
    assert f'data-timeouts="{result.summary.timeouts}"' in page
    assert 'class="lane-label"' not in page and "stream opened" not in page
    assert "none: health timing only" in page and "GET" not in texts(page, "facts")[0]
    assert 'data-key="streams_opened"' not in page


def test_banner_and_numbers_say_why_it_failed() -> None:
    """The banner says FAIL and why; the table shows the percentiles and counts of the run."""
    result = failing()
    page = render_probe_html(result)
    s = result.summary
    reason = verdict_reason(result)
    assert reason == (
        f"{s.timeouts} health checks got no answer within 2 s; "
        f"longest stall {s.longest_stall_s:.1f} s."
    )
    assert texts(page, "verdict-word") == ["FAIL"]
    assert texts(page, "reason") == [reason]
    cells = dict(re.findall(r'<td data-key="(\w+)">([^<]*)</td>', page))
    assert cells["requests"] == str(s.requests) and cells["timeouts"] == str(s.timeouts)
    assert cells["p99"] == "2.00 s" and cells["streams_aborted"] == str(s.streams_aborted)
    assert cells["streams_failed"] == str(s.streams_failed) and cells["events"] == str(s.events)
    assert set(cells) >= {"p50", "p90", "max", "errors", "streams_opened", "longest_stall"}


def test_diagnosis_shows_cause_line_wait_stack_and_fix() -> None:
    """The finding: code and rule, where with its source, the worker, the folded stack, the fix."""
    page = render_probe_html(failing())
    rule = get_rule("HD101")
    assert "Caught in the act: <strong>HD101 executor-shutdown-on-loop</strong>" in page
    assert texts(page, "summary") == [rule.summary.replace("`", "")]
    assert "/srv/app/api/routes/stream.py:35" in page
    assert texts(page, "source")[0] == "35with ThreadPoolExecutor(max_workers=2) as ex:"
    assert "thread ThreadPoolExecutor-0_0" in page and "fetch_news" in page
    user = texts(page, "user")
    assert len(user) == 1 and user[0].startswith("news_stream.<locals>.gen")
    folds = [t for t in re.findall(r"<summary>([^<]*)</summary>", page)]
    assert folds == ["17 library frames (starlette, anyio, uvicorn, asyncio, click)"]
    good = texts(page, "good")
    assert good == [rule.good.rstrip()]  # highlighted, yet the same text
    assert "hangdoctor explain HD101" in page


def test_highlighting_never_loses_text() -> None:
    """Fragments the tokenizer rejects (an open bracket, an f-string) still show in full."""
    for code in ("foo(a,", 'yield f"data: {item}\\n\\n"', "x = 1  # <tag>", "def f(:\n  '"):
        result = replace(failing(), diagnosis=_diagnosis(_finding(source=code)))
        assert texts(render_probe_html(result), "source")[0] == "35" + code.strip()


def test_verdict_reason_for_pass_slow_and_empty_runs() -> None:
    """PASS says the p99 is under the limit; a slow run names the p99; no requests is said."""
    passed = synthetic(stalls=())
    assert passed.verdict is ProbeVerdict.PASS
    assert re.fullmatch(
        r"No health check timed out; p99 \d\.\d ms is under the 500 ms limit\.",
        verdict_reason(passed),
    )
    slow = synthetic(stalls=((3.0, 4.2),))
    assert slow.summary.timeouts == 0 and slow.verdict is ProbeVerdict.FAIL
    assert verdict_reason(slow).startswith("P99 ")
    assert "is over the 500 ms limit; longest stall 1.2 s." in verdict_reason(slow)
    cfg = passed.config
    summary, stalls, verdict = summarize(cfg, (), ())
    empty = replace(passed, health=(), streams=(), stalls=stalls, summary=summary, verdict=verdict)
    assert verdict_reason(empty) == "No health request was made."
    assert "no health requests were recorded" in render_probe_html(empty)


def test_write_replaces_the_file_whole(tmp_path: Path) -> None:
    """write_probe_html leaves exactly the report behind, no temporary file."""
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    assert write_probe_html(failing(), target) == target
    assert target.read_text(encoding="utf-8") == render_probe_html(failing())
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """One headless Chromium (fresh profile) for the module."""
    with launch(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def _open(browser: BrowserContext, path: Path) -> tuple[Any, PageWatch]:
    page = browser.new_page()
    watch = PageWatch.attach(page)
    page.goto(path.as_uri(), wait_until="load", timeout=30_000)
    return page, watch


def _count(page: Any, selector: str) -> int:
    return int(page.evaluate("s => document.querySelectorAll(s).length", selector))


def _check_in_browser(
    browser: BrowserContext, result: ProbeResult, path: Path, shot: str
) -> tuple[Any, PageWatch]:
    """Load the report from file://, check it is clean and drawn, and screenshot it."""
    write_probe_html(result, path)
    page, watch = _open(browser, path)
    s = result.summary
    assert watch.problems() == []
    assert watch.requests == [path.as_uri()]  # the page itself, nothing else
    assert _count(page, "#timeline circle.health-point") == s.requests - s.timeouts
    assert _count(page, "#timeline path.health-timeout") == s.timeouts
    assert _count(page, "#timeline rect.stall") == len(result.stalls)
    assert _count(page, "#timeline line.stream-open") == s.streams_opened
    box = page.locator("#timeline").bounding_box()
    assert box is not None and box["width"] > 800 and box["height"] > 250  # drawn, full width
    inside = page.evaluate(
        """() => {
            const svg = document.getElementById('timeline').getBoundingClientRect();
            return [...document.querySelectorAll('#timeline .health-point')].every(c => {
                const r = c.getBoundingClientRect();
                return r.width > 0 && r.left >= svg.left && r.right <= svg.right
                    && r.top >= svg.top && r.bottom <= svg.bottom;
            });
        }"""
    )
    assert inside, "a health point is drawn outside the chart"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, watch


def test_failing_report_in_chromium(browser: BrowserContext, tmp_path: Path) -> None:
    """A failing run: no console errors or requests, every mark drawn, stalls shaded, screenshot."""
    result = failing()
    page, _ = _check_in_browser(browser, result, tmp_path / "r.html", "probe-report.png")
    assert len(result.stalls) == 2 and _count(page, "#timeline rect.stall") == 2
    assert _count(page, "#timeline .capture") == 1
    assert page.inner_text("#verdict .verdict-word") == "FAIL"
    assert "HD101" in page.inner_text("#diagnosis")
    stall = page.locator("#timeline rect.stall").first.bounding_box()
    assert stall is not None and stall["width"] > 50
    page.close()


def test_passing_report_in_chromium(browser: BrowserContext, tmp_path: Path) -> None:
    """A passing run: PASS banner, no stall, no cross, and no diagnosis section."""
    result = synthetic(stalls=())
    page, _ = _check_in_browser(browser, result, tmp_path / "r.html", "probe-report-pass.png")
    assert page.inner_text("#verdict .verdict-word") == "PASS"
    assert _count(page, "#timeline rect.stall") == 0
    assert _count(page, "#timeline path.health-timeout") == 0
    assert _count(page, "#diagnosis") == 0
    page.close()


def test_health_only_report_in_chromium(browser: BrowserContext, tmp_path: Path) -> None:
    """A health-only run (clients=0) loads clean with its points, crosses and one stall."""
    page, _ = _check_in_browser(browser, health_only(), tmp_path / "r.html", "probe-health.png")
    assert _count(page, "#timeline rect.stall") == 1
    assert _count(page, "#timeline .lane-label") == 0
    page.close()


def test_hostile_report_runs_nothing_in_chromium(browser: BrowserContext, tmp_path: Path) -> None:
    """Markup from the target shows as text: no script element, no dialog, no image request."""
    path = tmp_path / "hostile.html"
    write_probe_html(hostile(), path)
    page, watch = _open(browser, path)
    assert _count(page, "script") == 0 and _count(page, "img") == 0 and _count(page, "b") == 0
    assert watch.problems() == [] and watch.requests == [path.as_uri()]
    assert f"x = '{HOSTILE}'" in page.inner_text("#diagnosis pre.source")
    page.close()


@pytest.mark.e2e
def test_report_of_a_real_probe_run(
    browser: BrowserContext, newsroom: ServerFactory, tmp_path: Path
) -> None:
    """A real probe of the buggy app renders with exactly its own marks and names HD101's line."""
    server = newsroom()
    cfg = ProbeConfig(
        url=server.base_url,
        streams=("/news/stream",),
        health="/health",
        clients=4,
        duration_s=6.0,
        abort_min_s=0.3,
        abort_max_s=1.0,
        seed=1,
    )
    # Playwright's sync API keeps an event loop running on this thread: probe on another one
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(probe, cfg, pid=server.pid).result(timeout=120)
    assert result.verdict is ProbeVerdict.FAIL
    page, _ = _check_in_browser(browser, result, tmp_path / "real.html", "probe-report-real.png")
    assert _count(page, "#timeline rect.stall") >= 1
    assert result.diagnosis is not None, result.notes  # caught in the act
    assert _count(page, "#timeline .capture") == 1
    exp = expected("HD101")
    assert f"{exp.file}:{exp.line}" in page.inner_text("#diagnosis")
    assert "HD101" in page.inner_text("#verdict")
    page.close()


def test_docs_screenshot_is_present() -> None:
    """The README's screenshot of a report is in the repository and is a PNG."""
    shot = ROOT / "docs" / "images" / "probe-report.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_doctor_report_shows_before_the_diagnosis_the_diff_and_after() -> None:
    """doctor's report keeps both runs (their own ids), the caught cause and the escaped diff."""
    from hangdoctor.report.html import render_doctor_html

    before, after = failing(), synthetic(stalls=())
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-    with Pool() as ex:  # <b>\n+    ex = POOL\n"
    page = render_doctor_html(before, after, fix_diff=diff, fixed_file="/srv/app/x.py")
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert {"comparison", "before-timeline", "after-timeline", "before-diagnosis", "fix"} <= set(
        ids
    )
    assert texts(page, "verdict-word") == ["PASS"]
    assert "Caught in the act: <strong>HD101" in page and "Before the fix: FAIL." in page
    verdicts = dict(re.findall(r'<td data-run="(\d)" data-key="verdict">(\w+)</td>', page))
    assert verdicts == {"0": "FAIL", "1": "PASS"}
    stalls = dict(re.findall(r'<td data-run="(\d)" data-key="longest_stall">([^<]+)</td>', page))
    assert stalls["1"] == "0.00 s" and stalls["0"] != stalls["1"]
    assert '<span class="del">-    with Pool() as ex:  # &lt;b&gt;</span>' in page
    assert '<span class="add">+    ex = POOL</span>' in page
    assert page.index('id="before-timeline"') < page.index('id="fix"')
    assert page.index('id="fix"') < page.index('id="after-timeline"')


def test_numbers_say_how_percentiles_and_the_baseline_are_counted() -> None:
    """The numbers card defines the percentiles and shows the baseline and the slowdown."""
    result = synthetic(stalls=())
    baseline = tuple(HealthSample(i * 0.1, 0.02, 200) for i in range(10))
    summary, stalls, verdict = summarize(result.config, result.health, result.streams, baseline)
    page = render_probe_html(
        replace(result, baseline=baseline, summary=summary, stalls=stalls, verdict=verdict)
    )
    assert "one that got no answer counts at the deadline (2 s)" in page
    cells = dict(re.findall(r'<td data-key="(\w+)">([^<]*)</td>', page))
    assert cells["baseline_p99"] == "20 ms" and cells["slowdown"].endswith("times (limit 10)")
