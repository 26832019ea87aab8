"""A real browser is the SSE client: headless Chromium opens /news/stream and closes it.

The probe times /health (no stream clients of its own) while the browser
connects with `EventSource`, reads the first event and closes the stream.
On the buggy newsroom app that close freezes the service: the probe's health
timing must see it, and `hangdoctor diagnose` must name HD101 at its line.
On the fixed app the same close leaves /health fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.browser import PageWatch, launch
from tests.conftest import ServerFactory, diagnose_json, expected

from hangdoctor.probe.engine import probe
from hangdoctor.probe.http import timed_get
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult, ProbeVerdict

pytestmark = pytest.mark.e2e

PROBE_S = 8.0  # long enough to launch the browser, read one event, close, and see the stall
HELLO_TIMEOUT_MS = 15_000

# Opens the stream from the app's own origin (no CORS involved), resolves with the data of
# the first `hello` event, then closes the EventSource: the browser drops the connection.
_OPEN_AND_CLOSE = """
([path, timeoutMs]) => new Promise((resolve, reject) => {
    const es = new EventSource(path);
    const timer = setTimeout(() => {
        es.close();
        reject(new Error(`no hello event within ${timeoutMs} ms`));
    }, timeoutMs);
    es.addEventListener("hello", (event) => {
        clearTimeout(timer);
        es.close();
        resolve(event.data);
    });
    es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) {
            clearTimeout(timer);
            reject(new Error("the stream failed before its first event"));
        }
    };
})
"""


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """A thread for the probe: Playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe") as executor:
        yield executor


def _start_probe(pool: ThreadPoolExecutor, base_url: str, pid: int) -> Future[ProbeResult]:
    """Start timing /health (clients=0) and return once the first health request finished."""
    timing = threading.Event()
    cfg = ProbeConfig(
        url=base_url, streams=(), health="/health", clients=0, duration_s=PROBE_S, seed=1
    )
    future: Future[ProbeResult] = pool.submit(
        probe,
        cfg,
        pid=pid,
        capture=False,  # `diagnose` attaches below; two tracers on one process would collide
        on_progress=lambda p: timing.set() if p.health_requests else None,
    )
    deadline = time.monotonic() + 30.0
    while not timing.wait(0.1):
        if future.done():
            future.result()  # the probe could not start: show why
        assert time.monotonic() < deadline, "the probe never timed a health request"
    return future


def _browser_opens_and_closes(
    base_url: str, profile: Path, before_open: Callable[[], object]
) -> str:
    """Chromium loads the app's origin, opens the stream, reads `hello`, closes; its data.

    `before_open` runs once the page is loaded: a browser's start-up on a loaded machine
    takes seconds, and the probe's clock must cover the close, not the launch.
    """
    with launch(profile) as browser:
        page = browser.new_page()
        watch = PageWatch.attach(page)
        page.goto(base_url + "/health", wait_until="load", timeout=15_000)
        before_open()
        data = str(page.evaluate(_OPEN_AND_CLOSE, ["/news/stream", HELLO_TIMEOUT_MS]))
        page.close()
    assert watch.errors == [], watch.errors
    return data


def _wait_until_slow(base_url: str, timeout: float = 10.0) -> None:
    """Until a health request takes longer than 300 ms: the service is stuck."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not timed_get(base_url + "/health", timeout=0.3).ok:
            return
        time.sleep(0.05)
    raise AssertionError(f"/health stayed fast for {timeout:g} s after the browser closed")


def test_browser_abort_freezes_the_buggy_app(
    newsroom: ServerFactory, pool: ThreadPoolExecutor, tmp_path: Path
) -> None:
    """A browser closing its EventSource hangs /health: the probe fails, diagnose says HD101."""
    server = newsroom()
    started: list[Future[ProbeResult]] = []

    def begin() -> None:
        started.append(_start_probe(pool, server.base_url, server.pid))

    assert _browser_opens_and_closes(server.base_url, tmp_path / "profile", begin) == "connected"
    running = started[0]
    _wait_until_slow(server.base_url)
    status, out = diagnose_json(server.pid)
    result = running.result(timeout=PROBE_S + 60)

    assert status == 1 and out["verdict"] == "blocked"
    finding = next(f for f in out["findings"] if f["code"] == "HD101")
    exp = expected("HD101")
    assert finding["file"].endswith(exp.file) and finding["line"] == exp.line
    assert result.verdict is ProbeVerdict.FAIL
    assert result.summary.timeouts > 0 and result.stalls
    assert result.summary.streams_opened == 0  # the browser was the only stream client


def test_browser_abort_leaves_the_fixed_app_fast(
    newsroom: ServerFactory, pool: ThreadPoolExecutor, tmp_path: Path
) -> None:
    """Control: the same browser close on the fixed app; health stays answered, no alarm."""
    server = newsroom(app="api.main:fixed_app")
    started: list[Future[ProbeResult]] = []

    def begin() -> None:
        started.append(_start_probe(pool, server.base_url, server.pid))

    assert _browser_opens_and_closes(server.base_url, tmp_path / "profile", begin) == "connected"
    running = started[0]
    status, out = diagnose_json(server.pid)
    result = running.result(timeout=PROBE_S + 60)

    assert status == 0 and out["verdict"] == "healthy", out
    assert result.summary.timeouts == 0 and result.summary.errors == 0
    assert result.verdict is ProbeVerdict.PASS, result.summary
