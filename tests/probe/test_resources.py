"""The probe watches the server's threads and open files and fails a run that leaks them.

The judgement (growth with the number of dropped streams, not a fixed rise) is
checked on sample series shaped like the runs that were measured; the sampling
on a real child process; the whole path on real uvicorn servers: yesterday's
HD101 fix (a pool per stream) must FAIL with the threads message, the bounded
fix must PASS.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, ROOT, newsroom_argv, run_hangdoctor
from tests.probe._servers import quick_config

from hangdoctor.probe.engine import run_probe
from hangdoctor.probe.resources import ResourceSample, ResourceWatch, judge
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.probe.timeline import ProbeVerdict
from hangdoctor.report.probe_json import probe_to_jsonable
from hangdoctor.report.probe_terminal import verdict_reasons

LEAKY = ROOT / "tests" / "data" / "leaky_fix" / "stream.py"


def series(values: list[tuple[int, int]], *, fds: int | None = 12) -> list[ResourceSample]:
    """Samples: the first is the 'before' one, the last the 'after' one; (drops, threads)."""
    out = [ResourceSample(0.0, "before", values[0][1], fds, 0)]
    for i, (drops, threads) in enumerate(values[1:-1], start=1):
        out.append(ResourceSample(i * 0.25, "during", threads, fds, drops))
    drops, threads = values[-1]
    out.append(ResourceSample(len(values) * 0.25, "after", threads, fds, drops))
    return out


def test_a_thread_per_dropped_stream_is_a_leak_with_the_message() -> None:
    """GIVEN threads that rise by one per drop (2 -> 82 over 80 drops) THEN one growth, and
    its message says what each dropped stream leaves behind."""
    growth = judge(series([(0, 2)] + [(d, 2 + d) for d in range(5, 81, 5)] + [(80, 82)]))
    assert len(growth) == 1
    g = growth[0]
    assert (g.kind, g.before, g.peak, g.drops) == ("threads", 2, 82, 80)
    assert g.message.startswith(
        "threads 2 → 82 during the probe: each dropped stream leaves a thread behind"
    )


def test_a_bounded_pool_that_fills_once_is_not_a_leak() -> None:
    """GIVEN a pool of 32 threads that fills over the first 32 drops and then stays flat
    over 120 more THEN no growth is reported: the rise is fixed, not per drop."""
    values = [(0, 3)] + [(d, 3 + min(d, 32)) for d in range(4, 153, 4)] + [(152, 35)]
    assert judge(series(values)) == ()


def test_open_streams_are_not_leaked_files() -> None:
    """Open files rise by the number of open streams (40) and stay there while streams are
    replaced; that is no leak, and they fall back at the end."""
    samples = [ResourceSample(0.0, "before", 5, 10, 0)]
    samples += [ResourceSample(0.25 * i, "during", 5, 50, 8 * i) for i in range(1, 30)]
    samples.append(ResourceSample(8.0, "after", 5, 11, 232))
    assert judge(samples) == ()


def test_leaked_sockets_are_reported_as_open_files() -> None:
    """GIVEN fds that grow by one per drop THEN the growth is of open files, said so."""
    samples = [ResourceSample(0.0, "before", 5, 10, 0)]
    samples += [ResourceSample(0.25 * i, "during", 5, 10 + 4 * i, 4 * i) for i in range(1, 21)]
    samples.append(ResourceSample(6.0, "after", 5, 90, 80))
    (growth,) = judge(samples)
    assert growth.kind == "fds"
    assert "open files 10 → 90 during the probe" in growth.message
    assert "leaves an open file behind" in growth.message


def test_too_few_drops_are_not_judged() -> None:
    """Five drops and five more threads cannot tell a leak from a pool: no verdict on it."""
    assert judge(series([(0, 2), (1, 3), (3, 5), (5, 7), (5, 7)])) == ()


def test_unreadable_counts_are_not_judged() -> None:
    """No value (another user's process) is never read as a rise, nor as none."""
    samples = [ResourceSample(0.0, "before", None, None, 0)]
    samples += [ResourceSample(0.25 * i, "during", None, None, 10 * i) for i in range(1, 10)]
    assert judge(samples) == ()


@pytest.fixture
def thready() -> Iterator[subprocess.Popen[str]]:
    """A Python child that starts one sleeping thread per line it reads; stopped by PID."""
    code = (
        "import sys, threading, time\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "    print('ok', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def test_watch_counts_threads_and_fds_of_a_real_process(thready: subprocess.Popen[str]) -> None:
    """GIVEN a real child WHEN it starts 12 threads THEN the samples count them from /proc,
    and its open files are counted too."""
    assert thready.stdin is not None and thready.stdout is not None
    watch = ResourceWatch([thready.pid], clock=time.monotonic)
    first = watch.sample("before", 0)
    for _ in range(12):
        thready.stdin.write("x\n")
        thready.stdin.flush()
        assert thready.stdout.readline() == "ok\n"
    last = watch.sample("after", 12)
    assert first.threads is not None and last.threads == first.threads + 12
    assert first.fds is not None and first.fds >= 3  # stdin, stdout, stderr at least
    report = watch.report()
    assert report.pids == (thready.pid,) and len(report.samples) == 2


# --- end to end: real uvicorn servers, the real probe ------------------------------------


@pytest.fixture
def slow_newsroom(tmp_path: Path) -> Iterator[dict[str, ManagedServer]]:
    """Two servers with a 30 s upstream: the leaky fix (a copy) and the bounded fixed_app."""
    leaky = tmp_path / "newsroom"
    shutil.copytree(APP_DIR, leaky, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(LEAKY, leaky / "api" / "routes" / "stream.py")
    servers: dict[str, ManagedServer] = {}
    try:
        for name, app, app_dir in (
            ("leaky", "api.main:app", leaky),
            ("bounded", "api.main:fixed_app", APP_DIR),
        ):
            port = free_port()
            servers[name] = ManagedServer(
                newsroom_argv(port, app=app, app_dir=app_dir),
                base_url=f"http://127.0.0.1:{port}",
                cwd=str(app_dir),
                env={"NEWSROOM_UPSTREAM_DELAY": "30", "PYTHONUNBUFFERED": "1"},
                ready_timeout=30.0,
            ).start()
        yield servers
    finally:
        for server in servers.values():
            server.stop(grace=1.0)


def _probe(server: ManagedServer, **pid: int) -> object:
    config = quick_config(server.base_url, clients=6, duration_s=5.0, abort_max_s=0.6)
    return asyncio.run(run_probe(config, capture=False, **pid))  # type: ignore[arg-type]


@pytest.mark.e2e
def test_probe_fails_the_leaky_fix_and_passes_the_bounded_one(
    slow_newsroom: dict[str, ManagedServer],
) -> None:
    """GIVEN a 30 s upstream WHEN streams are dropped for 5 s THEN the pool-per-stream fix,
    which keeps /health fast, FAILS on its thread growth, with the message, in the verdict
    and the JSON; the one-pool-per-application fix PASSES with its threads flat."""
    leaky = _probe(slow_newsroom["leaky"], pid=slow_newsroom["leaky"].pid)
    bounded = _probe(slow_newsroom["bounded"])  # no --pid: the port's owner is found
    assert leaky.summary.timeouts == 0  # type: ignore[attr-defined]
    assert leaky.verdict is ProbeVerdict.FAIL  # type: ignore[attr-defined]
    reasons = " ".join(verdict_reasons(leaky))  # type: ignore[arg-type]
    assert "during the probe: each dropped stream leaves a thread behind" in reasons, reasons
    data = json.loads(json.dumps(probe_to_jsonable(leaky, exit_code=1)))  # type: ignore[arg-type]
    growth = data["resources"]["growth"]
    assert [g["kind"] for g in growth] == ["threads"] and growth[0]["peak"] > growth[0][
        "before"
    ] + 20

    assert bounded.verdict is ProbeVerdict.PASS, verdict_reasons(bounded)  # type: ignore[attr-defined,arg-type]
    report = bounded.resources  # type: ignore[attr-defined]
    assert report is not None and report.growth == ()
    assert report.pids == (slow_newsroom["bounded"].pid,)
    assert report.peak("threads") <= report.first("threads") + 4 + 3


@pytest.fixture
def leaky_app(tmp_path: Path) -> Path:
    """A copy of the newsroom whose stream route is yesterday's pool-per-stream fix."""
    app = tmp_path / "leaky"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(LEAKY, app / "api" / "routes" / "stream.py")
    return app


@pytest.mark.e2e
def test_probe_counts_the_threads_of_every_worker(leaky_app: Path) -> None:
    """GIVEN the leaky fix under `uvicorn --workers 2` and the master's PID WHEN streams are
    dropped THEN the workers' threads are counted (the master has few) and the run FAILS."""
    port = free_port()
    server = ManagedServer(
        newsroom_argv(port, app_dir=leaky_app, workers=2),
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(leaky_app),
        env={"NEWSROOM_UPSTREAM_DELAY": "30", "PYTHONUNBUFFERED": "1"},
        ready_timeout=30.0,
    ).start()
    try:
        time.sleep(1.0)  # both workers are up, not only the first one to answer
        result = _probe(server, pid=server.pid)
    finally:
        server.stop(grace=1.0)
    report = result.resources  # type: ignore[attr-defined]
    assert report is not None and len(report.pids) >= 3  # the master and its workers
    assert result.verdict is ProbeVerdict.FAIL  # type: ignore[attr-defined]
    assert [g.kind for g in report.growth] == ["threads"]


@pytest.mark.e2e
def test_doctor_fails_a_fix_that_leaks_threads(
    leaky_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the leaky fix WHEN `hangdoctor doctor` starts and probes it THEN it exits 1 and
    says that each dropped stream leaves a thread behind, although no health check failed."""
    monkeypatch.setenv("NEWSROOM_UPSTREAM_DELAY", "30")
    proc = run_hangdoctor(
        "doctor",
        "--stream",
        "/news/stream",
        "--clients",
        "10",
        "--duration",
        "6",
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--app-dir",
        str(leaky_app),
        "--port",
        str(free_port()),
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-2000:]
    assert "during the probe: each dropped stream leaves a thread behind" in out, out
    assert "Traceback" not in out + proc.stderr
