"""`hangdoctor diagnose` end to end: real uvicorn processes, the real py-spy, the real CLI.

Each live-visible cause is reproduced by a route of the newsroom example app
and must be diagnosed with the right code at the line tests/data/newsroom_lines.json
names; healthy apps must not raise a false alarm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import (
    ROOT,
    Background,
    ServerFactory,
    diagnose_json,
    expected,
    newsroom_argv,
    run_hangdoctor,
)

from hangdoctor.capture.procs import children
from hangdoctor.probe.http import abort_stream, timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = pytest.mark.e2e

BLOCK_S = 4.0  # how long each cause blocks: longer than the ~1 s of sampling


@pytest.fixture(scope="module")
def causes_server() -> Iterator[ManagedServer]:
    """One newsroom app shared by the per-cause tests: each cause ends after BLOCK_S."""
    port = free_port()
    server = ManagedServer(
        newsroom_argv(port),
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"PYTHONUNBUFFERED": "1"},
        ready_timeout=30.0,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def _finding(out: dict[str, Any], code: str) -> dict[str, Any]:
    codes = [f["code"] for f in out["findings"]]
    assert code in codes, (codes, out["notes"])
    return next(f for f in out["findings"] if f["code"] == code)


def _assert_at(finding: dict[str, Any], tag: str) -> None:
    exp = expected(tag)
    assert finding["file"].endswith(exp.file), finding["file"]
    assert finding["line"] == exp.line, (finding["line"], finding.get("source"))
    assert finding["source"] and finding["source"].strip() == exp.text


def _wait_until_blocked(base: str) -> None:
    """Wait until /health stops answering quickly: the cause is live."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not timed_get(base + "/health", timeout=0.3).ok:
            return
        time.sleep(0.05)
    raise AssertionError("the route never blocked the loop")


@pytest.mark.parametrize(
    ("route", "code"),
    [
        ("sleep", "HD201"),
        ("http", "HD202"),
        ("socket", "HD203"),
        ("subprocess", "HD204"),
        ("file", "HD205"),
        ("lock", "HD206"),
        ("future", "HD102"),
        ("unknown", "HD900"),
    ],
)
def test_blocking_cause_is_named_at_its_line(
    causes_server: ManagedServer, background: Background, route: str, code: str
) -> None:
    """GIVEN a route that blocks the loop WHEN diagnosed THEN blocked, right code, right line."""
    background.get(f"{causes_server.base_url}/causes/{route}?seconds={BLOCK_S}")
    _wait_until_blocked(causes_server.base_url)
    status, out = diagnose_json(causes_server.pid)
    background.join()
    assert status == 1
    assert out["verdict"] == "blocked"
    finding = _finding(out, code)
    _assert_at(finding, code)
    assert finding["pid"] == causes_server.pid
    assert finding["thread_name"] == "MainThread"
    assert finding["blocked_for_s"] is not None and finding["blocked_for_s"] >= 0.5
    if code == "HD102":
        assert finding["waits_for"]["function"] == "build_report"
        assert finding["waits_for"]["line"] == expected("worker-future").line


def test_cpu_work_is_busy(causes_server: ManagedServer, background: Background) -> None:
    """GIVEN pure-Python work on the loop WHEN diagnosed THEN busy, HD501, in the route."""
    background.get(f"{causes_server.base_url}/causes/cpu?seconds={BLOCK_S}")
    _wait_until_blocked(causes_server.base_url)
    status, out = diagnose_json(causes_server.pid)
    background.join()
    assert status == 1
    assert out["verdict"] == "busy"
    finding = _finding(out, "HD501")
    assert finding["file"].endswith("api/routes/causes.py")
    assert finding["function"] in ("cpu_on_loop", "_rank")


def test_thread_pool_starvation(causes_server: ManagedServer, background: Background) -> None:
    """GIVEN 45 slow sync requests WHEN diagnosed THEN starved (HD401): the loop itself is idle."""
    base = causes_server.base_url
    background.get(f"{base}/causes/starve?seconds={BLOCK_S + 1}", count=45)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and timed_get(base + "/health/sync", timeout=0.3).ok:
        time.sleep(0.1)
    assert timed_get(base + "/health", timeout=1.0).ok, "the async /health still answers"
    status, out = diagnose_json(causes_server.pid)
    background.join()
    assert status == 1
    assert out["verdict"] == "starved"
    finding = _finding(out, "HD401")
    _assert_at(finding, "HD401")


def _abort_stream_and_wait(base: str) -> None:
    abort_stream(base + "/news/stream", after=0.5)
    _wait_until_blocked(base)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_stream_abort_is_hd101_with_the_worker(newsroom: ServerFactory, loop: str) -> None:
    """GIVEN the canonical SSE bug WHEN a client aborts THEN HD101 at the `with`, worker named."""
    server = newsroom(loop=loop)
    _abort_stream_and_wait(server.base_url)
    status, out = diagnose_json(server.pid)
    assert status == 1
    assert out["verdict"] == "blocked"
    finding = _finding(out, "HD101")
    _assert_at(finding, "HD101")
    assert finding["blocked_for_s"] >= 0.5
    waits = finding["waits_for"]
    assert waits["function"] == "fetch_news"
    assert waits["line"] == expected("worker").line
    assert "sleep" in waits["source"]
    assert any(lp["kind"] == loop for lp in out["loops"])


def test_native_frames_do_not_change_the_cause(newsroom: ServerFactory) -> None:
    """With --native (C frames in the stack) the cause and the user's line stay the same."""
    server = newsroom()
    _abort_stream_and_wait(server.base_url)
    status, out = diagnose_json(server.pid, "--native")
    assert status == 1
    finding = _finding(out, "HD101")
    _assert_at(finding, "HD101")


def test_text_report_names_cause_line_and_fix(newsroom: ServerFactory) -> None:
    """The human report shows the verdict, code, file:line with its source, the worker and fix."""
    server = newsroom()
    _abort_stream_and_wait(server.base_url)
    proc = run_hangdoctor("diagnose", "--pid", str(server.pid))
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    exp = expected("HD101")
    assert "BLOCKED" in text.upper()
    assert "HD101" in text
    assert f"stream.py:{exp.line}" in text
    assert "with ThreadPoolExecutor(max_workers=2) as ex:" in text
    assert "fetch_news" in text
    assert "cancel_futures=True" in text
    # paths are shown relative to the server's working directory, not as absolute paths
    assert str(ROOT) not in text, text


def test_two_workers_report_the_blocked_one(newsroom: ServerFactory) -> None:
    """GIVEN `uvicorn --workers 2` WHEN one worker hangs THEN the master's PID finds that worker."""
    server = newsroom(workers=2)
    workers = {p.pid for p in children(server.pid) if p.is_python}
    # /health may be served by the other, healthy worker: give the hang time to start instead
    abort_stream(server.base_url + "/news/stream", after=0.5)
    time.sleep(1.0)
    status, out = diagnose_json(server.pid)
    assert status == 1
    assert out["verdict"] == "blocked"
    finding = _finding(out, "HD101")
    assert finding["pid"] in workers and finding["pid"] != server.pid
    loop_pids = {lp["pid"] for lp in out["loops"]}
    assert len(loop_pids & workers) == 2, out["loops"]
    states = {lp["pid"]: lp["state"] for lp in out["loops"]}
    assert sorted(states.values()) == ["blocked", "idle"]


def test_fixed_stream_under_load_is_healthy(newsroom: ServerFactory) -> None:
    """GIVEN the fixed app under steady load and stream aborts THEN healthy, exit 0."""
    server = newsroom(app="api.main:fixed_app")
    base = server.base_url
    stop = threading.Event()
    answered: list[bool] = []

    def load() -> None:
        # steady, not saturating: three clients back to back on two shared cores keep the
        # loop itself busy serving them (a true "busy"), and starve py-spy now and then
        while not stop.wait(0.02):
            answered.append(timed_get(base + "/news/latest", timeout=2.0).ok)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        for _ in range(3):
            abort_stream(base + "/news/stream", after=0.3)
        status, out = diagnose_json(server.pid)
    finally:
        stop.set()
        for w in workers:
            w.join(5)
    assert out["verdict"] == "healthy", out["findings"]
    assert status == 0
    assert out["findings"] == []
    assert answered and all(answered)
    assert timed_get(base + "/health", timeout=2.0).ok


def test_locals_are_shown_on_request_with_secrets_redacted(
    causes_server: ManagedServer, background: Background
) -> None:
    """--locals shows the user frame's locals; secret-looking ones are redacted by default."""
    background.get(f"{causes_server.base_url}/causes/login?seconds={BLOCK_S * 3}")  # 3 runs
    _wait_until_blocked(causes_server.base_url)
    plain = run_hangdoctor("diagnose", "--pid", str(causes_server.pid))
    shown = run_hangdoctor("diagnose", "--pid", str(causes_server.pid), "--locals")
    _, as_json = diagnose_json(causes_server.pid)
    background.join()
    assert plain.returncode == shown.returncode == 1, plain.stderr + shown.stderr
    assert f"causes.py:{expected('HD201-login').line}" in shown.stdout
    assert "Locals of slow_login" in shown.stdout
    assert "password" in shown.stdout and "api_token" in shown.stdout
    assert "hunter2-newsroom" not in shown.stdout
    assert "nr-0123456789abcdef" not in shown.stdout
    assert "Locals of" not in plain.stdout
    frames = as_json["findings"][0]["stack"]
    assert all(not f.get("locals") for f in frames)
