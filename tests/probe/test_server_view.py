"""The server's own view in the probe report: the runtime's metrics on the health time axis.

A real uvicorn server runs the hangdoctor runtime (`apps/with_runtime.py`: the
middleware, a watchdog at 0.25 s, HangdoctorMetrics on /metrics). The probe
runs for a few seconds while one request to /block sleeps on the server's
loop: the JSON keeps the loop lag and the stall with its catalog code where
the health latency shows it, and the HTML draws it in headless Chromium. A
server without the runtime gets one sentence, not an empty chart.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator
from tests.browser import PageWatch, launch
from tests.conftest import ROOT, run_hangdoctor

from hangdoctor.probe.engine import probe
from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.server_view import parse_metrics
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult
from hangdoctor.report.html import write_probe_html
from hangdoctor.report.probe_json import probe_to_jsonable
from hangdoctor.schemas import load_schema

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

APPS = Path(__file__).parent / "apps"
ARTIFACTS = ROOT / "test-artifacts"
BLOCK_AT_S = 2.0  # when the test stalls the server, on the probe's axis (roughly)
BLOCK_S = 1.2

pytestmark = pytest.mark.e2e


def _server(app: str, records: Path | None = None) -> ManagedServer:
    """`app` under uvicorn; with `records`, under `hangdoctor watch --out records` too."""
    port = free_port()
    watch = [sys.executable, "-m", "hangdoctor", "watch", "--threshold", "0.25",
             "--out", str(records), "--"] if records is not None else []  # fmt: skip
    return ManagedServer(
        [*watch, sys.executable, "-m", "uvicorn", app, "--app-dir", str(APPS),
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"RUNTIME_BLOCK_S": str(BLOCK_S)},
        ready_timeout=30.0,
    )  # fmt: skip


def _probe(config: ProbeConfig) -> ProbeResult:
    """probe() in a thread of its own: Playwright's sync API keeps a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(probe, config, capture=False).result()


def _config(url: str, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "url": url,
        "streams": ("/stream",),
        "health": "/health",
        "clients": 4,
        "duration_s": 5.0,
        "baseline_s": 0.0,
        "seed": 3,
    }
    values.update(overrides)
    return ProbeConfig(**values)


@pytest.fixture(scope="module")
def stalled_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbeResult]:
    """A 5 s probe of the runtime app, with one 1.2 s time.sleep on its loop at about 2 s.

    The server also runs under `hangdoctor watch --out`: the probe reads both its
    metrics and the records it writes (`--server-records`).
    """
    records = tmp_path_factory.mktemp("records") / "stalls.jsonl"
    with _server("with_runtime:app", records) as server:

        def block() -> None:
            time.sleep(BLOCK_AT_S)
            urllib.request.urlopen(server.base_url + "/block", timeout=10).read()

        poker = threading.Thread(target=block, daemon=True)
        poker.start()
        result = _probe(_config(server.base_url, server_records=str(records)))
        poker.join(10)
        yield result


def test_json_has_the_lag_series_and_the_stall_with_its_code(stalled_run: ProbeResult) -> None:
    data = probe_to_jsonable(stalled_run, exit_code=1)
    document = json.loads(json.dumps(data))
    errors = [e.message for e in Draft202012Validator(load_schema("probe")).iter_errors(document)]
    assert errors == []  # the series as the shipped schema describes them
    view = document["server_view"]
    assert view["note"] is None and view["url"].endswith("/metrics/")
    samples = view["samples"]
    assert len(samples) >= 10  # every quarter second over 5 s, a few lost to the stall
    lags = [s["lag_max_s"] for s in samples if s["lag_max_s"] is not None]
    assert lags and min(lags) < 0.05  # a free loop between the reads
    assert max(lags) >= 1.0  # the 1.2 s sleep, as its bucket's bound
    assert all(s["open_streams"] is not None for s in samples)
    assert max(s["open_streams"] for s in samples) >= 1
    assert all(s["threads"] and s["rss_bytes"] for s in samples)  # from /proc: a local server
    (stall,) = [e for e in view["events"] if e["kind"] == "stall"]
    assert stall["code"] == "HD201"  # time.sleep on the loop, as the catalog names it
    # on the same axis as the health latency: where the probe saw health stall
    (window,) = stalled_run.stalls
    assert abs(stall["t_start_s"] - window.t_start) < 0.5
    assert abs(stall["t_s"] - window.t_end) < 0.6
    assert stall["t_s"] - stall["t_start_s"] >= BLOCK_S - 0.3
    # beside the estimate, the record the server wrote: exact, with its line
    assert view["records_file"] and view["records_note"] is None
    (record,) = [r for r in view["records"] if r["blocked_for_s"] >= BLOCK_S / 2]
    assert record["kind"] == "stall" and record["code"] == "HD201"
    assert record["file"].endswith("with_runtime.py") and record["line"] == _block_line()
    assert window.t_start - 0.15 <= record["t_s"] <= window.t_end
    assert abs(record["t_s"] - stall["t_start_s"]) < 0.6  # the estimate, near the exact moment


def _block_line() -> int:
    """The line of with_runtime.py that sleeps on the loop."""
    lines = (APPS / "with_runtime.py").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if "time.sleep(BLOCK_S)" in text)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with launch(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def _count(page: Any, selector: str) -> int:
    return int(page.evaluate("s => document.querySelectorAll(s).length", selector))


def test_html_draws_what_the_server_saw(
    stalled_run: ProbeResult, browser: BrowserContext, tmp_path: Path
) -> None:
    path = write_probe_html(stalled_run, tmp_path / "report.html")
    page = browser.new_page()
    watch = PageWatch.attach(page)
    page.goto(path.as_uri(), wait_until="load", timeout=30_000)
    assert watch.problems() == []
    assert "What the server saw" in page.inner_text("#server-view h2")
    chart = page.locator("#server-timeline").bounding_box()
    health = page.locator("#timeline").bounding_box()
    assert chart is not None and health is not None
    assert chart["width"] > 800 and chart["height"] > 250
    assert abs(chart["width"] - health["width"]) < 2  # the same time axis, the same width
    assert _count(page, "#server-timeline .server-lag") == 1
    assert _count(page, "#server-timeline circle.server-point") >= 10
    assert _count(page, "#server-timeline polyline.server-streams") == 1
    assert _count(page, "#server-timeline polyline.server-rss") == 1
    stall = page.locator("#server-timeline g.server-stall")
    assert stall.count() == 1
    assert stall.get_attribute("data-code") == "HD201"
    assert page.text_content("#server-timeline g.server-stall text.server-code") == "HD201"
    span = page.locator("#server-timeline rect.server-stall-span").bounding_box()
    shaded = page.locator("#timeline rect.stall").bounding_box()
    assert span is not None and shaded is not None and span["width"] > 20
    assert abs(span["x"] - shaded["x"]) < 0.12 * health["width"]  # the same moment, both charts
    # the server's own record, exact, drawn apart from the estimate, with its code and line
    recorded = page.locator("#server-timeline g.server-record-stall")
    assert recorded.count() >= 1
    big = [
        i
        for i in range(recorded.count())
        if float(recorded.nth(i).get_attribute("data-t-end") or 0)
        - float(recorded.nth(i).get_attribute("data-t-start") or 0)
        >= BLOCK_S / 2
    ]
    assert len(big) == 1
    mark = recorded.nth(big[0])
    assert mark.get_attribute("data-code") == "HD201"
    label = mark.locator("text.server-record-label").text_content() or ""
    assert label == f"HD201 with_runtime.py:{_block_line()}"
    exact = mark.locator("rect.server-record-span").bounding_box()
    assert exact is not None and exact["width"] > 20
    assert exact["y"] + exact["height"] <= span["y"]  # its own lane, above the estimates
    assert abs(exact["x"] - shaded["x"]) < 0.05 * health["width"]
    table = page.inner_text("#server-records")
    assert f"with_runtime.py:{_block_line()}" in table and "HD201" in table
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "probe-server-view.png"), full_page=True)
    page.close()


def test_a_server_without_the_runtime_gets_one_sentence(
    browser: BrowserContext, tmp_path: Path
) -> None:
    with _server("short_sleeps:app") as server:
        result = _probe(_config(server.base_url, duration_s=1.0, clients=0, streams=()))
    view = result.server_view
    assert view is not None and not view.available and view.samples == ()
    assert view.note is not None and "no hangdoctor runtime" in view.note
    path = write_probe_html(result, tmp_path / "plain.html")
    page = browser.new_page()
    page.goto(path.as_uri(), wait_until="load", timeout=30_000)
    assert _count(page, "#server-timeline") == 0
    text = page.inner_text("#server-view p.server-none")
    assert text == view.note and text.count(". ") == 0  # one sentence
    page.close()


def test_named_metrics_that_are_not_there_stop_the_probe_before_it_runs() -> None:
    with _server("short_sleeps:app") as server:
        with pytest.raises(ProbeError, match=r"--server-metrics: .* answered HTTP 404"):
            _probe(_config(server.base_url, clients=0, streams=(), server_metrics="/metrics"))
        out = run_hangdoctor(
            "probe", server.base_url, "--clients", "0", "--duration", "1",
            "--server-metrics", "ftp://x/metrics", "--no-capture",
        )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--server-metrics 'ftp://x/metrics' is neither a path nor an http(s) URL" in out.stderr


def test_off_reads_nothing_and_the_report_has_no_section(tmp_path: Path) -> None:
    with _server("with_runtime:app") as server:
        result = _probe(
            _config(server.base_url, duration_s=1.0, clients=0, streams=(), server_metrics="off")
        )
    assert result.server_view is None
    assert "What the server saw" not in write_probe_html(result, tmp_path / "r.html").read_text()


def test_parse_metrics_reads_labels_and_skips_comments() -> None:
    text = (
        "# HELP hangdoctor_stalls_total stalls\n# TYPE hangdoctor_stalls_total counter\n"
        'hangdoctor_stalls_total{code="HD201"} 2.0\n'
        'hangdoctor_stalls_total{code="HD101",x="a\\"b"} 1.0\n'
        "hangdoctor_open_streams 3.0 1700000000\nnot a sample line\n"
    )
    parsed = parse_metrics(text)
    assert parsed["hangdoctor_stalls_total"] == [
        ({"code": "HD201"}, 2.0),
        ({"code": "HD101", "x": 'a\\"b'}, 1.0),
    ]
    assert parsed["hangdoctor_open_streams"] == [({}, 3.0)]
    assert "not" not in parsed
