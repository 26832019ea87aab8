"""Benchmark: how many churning stream clients the probe sustains with true health timing.

Run: .venv/bin/python bench/probe.py [--clients 50 200 500] [--duration 20] [--json]

Against the fixed (healthy) newsroom app under uvicorn, for each client count:
  probe      hangdoctor.probe.run_probe in this process: N stream clients that
             open /news/stream, read events and drop it after 0.2-3 s, while its
             health clock (a child process) times /health every 100 ms
  reference  bench/_health_ref.py, a separate minimal process (blocking
             sockets, a thread per request, no event loop) that sends the same
             /health request at the same moments: it learns the wall time of the
             probe's t=0 from the probe's first progress report and follows the
             same 100 ms schedule, so request k of both is sent together
  |err|      |probe latency - reference latency|, paired by tick k. Two
             requests sent together can still be served differently by a busy
             server, so this includes the server's own jitter
  wire       (root only) bench/_wire_ref.py times every /health request on the
             loopback from the request packet to the server's last data packet;
             probe latency - wire latency of the *same* request is exactly what
             the probe adds; `ref wire` is the same for the reference client
  loop       how late the stream clients' event loop runs a 10 ms timer
  cpu        CPU time of the probe (this process's share over the run, plus its
             health clock child), and as a share of one core
Target (issue 3): 500 concurrent clients with a p99 measuring error under 5 ms.
NEWSROOM_UPSTREAM_DELAY=1: each stream sends an event a second, so clients read
while they churn.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "newsroom"
sys.path.insert(0, str(ROOT / "src"))

from hangdoctor.probe.engine import ProbeProgress, run_probe  # noqa: E402
from hangdoctor.probe.server import ManagedServer, free_port  # noqa: E402
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult, percentile  # noqa: E402

INTERVAL = 0.1
TIMEOUT = 2.0


def _server(loop: str, cpus: str | None) -> ManagedServer:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:fixed_app", "--app-dir", str(APP_DIR),
        "--host", "127.0.0.1", "--port", str(port), "--loop", loop, "--no-access-log",
        "--backlog", "4096",
    ]  # fmt: skip
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    return ManagedServer(
        argv,
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"NEWSROOM_UPSTREAM_DELAY": "1", "PYTHONUNBUFFERED": "1"},
    )


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _start_wire(port: int) -> subprocess.Popen[str] | None:
    """The loopback sniffer (root only); None when it cannot run here."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_wire_ref.py")), str(port), "/health"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.wait(5)
        return None
    return proc


def _stop_wire(proc: subprocess.Popen[str] | None) -> list[list[Any]] | None:
    if proc is None:
        return None
    assert proc.stdin is not None and proc.stdout is not None
    time.sleep(0.2)  # the last packets of the last request
    proc.stdin.close()
    rows = [json.loads(line) for line in proc.stdout.read().splitlines()]
    proc.wait(10)
    return rows


def _match(starts: list[float], wall: float) -> int | None:
    """Index of the wire request sent within 50 ms after `wall` (the client's clock start)."""
    i = bisect.bisect_left(starts, wall)
    return i if i < len(starts) and starts[i] - wall < 0.05 else None


def _wire_errors(
    rows: list[list[Any]], who: str, samples: list[tuple[float, float]]
) -> list[float]:
    """Client latency - wire latency of the same request, for (wall start, latency) samples."""
    mine = sorted((r[1], r[2]) for r in rows if r[0] == who)
    starts = [r[0] for r in mine]
    errors = []
    for wall, latency in samples:
        j = _match(starts, wall)
        if j is not None:
            errors.append(latency - mine[j][1])
    return errors


async def _loop_lag(out: list[float], every: float = 0.01) -> None:
    """How late the probe's loop runs a timer: the delay a response waits before it is timed."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        out.append(loop.time() - due)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.2f}"


def run_level(
    base_url: str, clients: int, duration: float, probe_loop: str = "asyncio"
) -> dict[str, Any]:
    port = int(base_url.rsplit(":", 1)[1])
    ref = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_health_ref.py")), "127.0.0.1", str(port),
         "/health", str(INTERVAL), str(duration), str(TIMEOUT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert ref.stdin is not None
    wire = _start_wire(port)
    most_open = 0

    def on_progress(p: ProbeProgress) -> None:
        nonlocal most_open
        if ref.stdin is not None and not ref.stdin.closed:
            ref.stdin.write(f"{time.time() - p.t!r}\n")  # the wall time of the probe's t=0
            ref.stdin.close()
        most_open = max(most_open, p.streams_open)

    config = ProbeConfig(
        url=base_url,
        streams=("/news/stream",),
        health="/health",
        clients=clients,
        duration_s=duration,
        health_interval_s=INTERVAL,
        health_timeout_s=TIMEOUT,
        seed=1,
    )
    lags_loop: list[float] = []

    async def both() -> ProbeResult:
        monitor = asyncio.create_task(_loop_lag(lags_loop))
        try:
            return await run_probe(config, capture=False, on_progress=on_progress)
        finally:
            monitor.cancel()

    cpu0, child0, wall0 = _cpu_s(), _cpu_s(resource.RUSAGE_CHILDREN), time.monotonic()
    try:
        if probe_loop == "uvloop":
            import uvloop

            result = uvloop.run(both())
        else:
            result = asyncio.run(both())
        # the health clock child has been waited for; the reference and sniffer not yet
        cpu, wall = _cpu_s() - cpu0, time.monotonic() - wall0
        clock_cpu = _cpu_s(resource.RUSAGE_CHILDREN) - child0
        assert ref.stdout is not None
        out = ref.stdout.read()  # the reference ends by itself at the end of the schedule
        ref.wait(timeout=10)
        wire_rows = _stop_wire(wire)
    finally:
        for proc in (ref, wire):
            if proc is None:
                continue
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
    reference = {row[0]: row for row in map(json.loads, out.splitlines())}
    diffs: list[float] = []
    lags: list[float] = []
    probe_lat: list[float] = []
    ref_lat: list[float] = []
    for h in result.health:
        k = round(h.t / INTERVAL)
        lags.append(h.t - k * INTERVAL)
        row = reference.get(k)
        if row is None or h.status is None or row[3] is None:
            continue
        probe_lat.append(h.latency_s)
        ref_lat.append(row[2])
        diffs.append(h.latency_s - row[2])
    abs_diffs = [abs(d) for d in diffs]
    wire_err = ref_wire_err = None
    if wire_rows is not None:
        probe_samples = [
            (result.started_at + h.t, h.latency_s) for h in result.health if h.status is not None
        ]
        ref_samples = [(row[1], row[2]) for row in reference.values() if row[3] is not None]
        wire_err = _wire_errors(wire_rows, "probe", probe_samples)
        ref_wire_err = _wire_errors(wire_rows, "other", ref_samples)
    s = result.summary
    return {
        "clients": clients,
        "duration_s": duration,
        "pairs": len(diffs),
        "probe_p50_s": percentile(probe_lat, 50),
        "probe_p99_s": percentile(probe_lat, 99),
        "ref_p50_s": percentile(ref_lat, 50),
        "ref_p99_s": percentile(ref_lat, 99),
        "error_abs_p50_s": percentile(abs_diffs, 50),
        "error_abs_p99_s": percentile(abs_diffs, 99),
        "error_abs_max_s": max(abs_diffs, default=None),
        "error_mean_s": sum(diffs) / len(diffs) if diffs else None,
        "wire_pairs": None if wire_err is None else len(wire_err),
        "wire_error_p50_s": percentile(wire_err or [], 50),
        "wire_error_p99_s": percentile(wire_err or [], 99),
        "wire_error_max_s": max(wire_err or [], default=None),
        "ref_wire_error_p99_s": percentile(ref_wire_err or [], 99),
        "start_lag_p99_s": percentile(lags, 99),
        "loop_lag_p50_s": percentile(lags_loop, 50),
        "loop_lag_p99_s": percentile(lags_loop, 99),
        "loop_lag_max_s": max(lags_loop, default=None),
        "cpu_s": cpu + clock_cpu,
        "cpu_share": (cpu + clock_cpu) / wall,
        "clock_cpu_s": clock_cpu,
        "streams_open_max": most_open,
        "streams_opened": s.streams_opened,
        "streams_aborted": s.streams_aborted,
        "streams_failed": s.streams_failed,
        "events": s.events,
        "health_timeouts": s.timeouts,
        "verdict": result.verdict.value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--server-loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument(
        "--probe-loop",
        default="asyncio",
        choices=["asyncio", "uvloop"],
        help="the event loop the probe runs on in this process",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the server on CPU 0 and the probe and reference on the others (taskset)",
    )
    args = parser.parse_args()
    levels = []
    if args.pin:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    with _server(args.server_loop, "0" if args.pin else None) as server:
        for n in args.clients:
            levels.append(run_level(server.base_url, n, args.duration, args.probe_loop))
            time.sleep(2.0)  # let the streams of this level drain from the server
    if args.json:
        print(json.dumps({"python": platform.python_version(), "levels": levels}, indent=2))
        return
    print(f"probe benchmark: python {platform.python_version()}, {args.duration:.0f} s per level,"
          f" health every {INTERVAL * 1000:.0f} ms, latencies in ms")  # fmt: skip
    head = (
        f"{'clients':>7} {'open':>5} {'aborted':>7} {'pairs':>5} {'probe p50':>9} "
        f"{'probe p99':>9} {'ref p50':>8} {'ref p99':>8} {'|err| p50':>9} {'|err| p99':>9} "
        f"{'wire p50':>8} {'wire p99':>8} {'wire max':>8} {'ref wire':>8} "
        f"{'loop p99':>8} {'cpu s':>6} {'cpu %':>6}"
    )
    print(head)
    for r in levels:
        print(
            f"{r['clients']:>7} {r['streams_open_max']:>5} {r['streams_aborted']:>7} "
            f"{r['pairs']:>5} {_ms(r['probe_p50_s']):>9} {_ms(r['probe_p99_s']):>9} "
            f"{_ms(r['ref_p50_s']):>8} {_ms(r['ref_p99_s']):>8} {_ms(r['error_abs_p50_s']):>9} "
            f"{_ms(r['error_abs_p99_s']):>9} {_ms(r['wire_error_p50_s']):>8} "
            f"{_ms(r['wire_error_p99_s']):>8} {_ms(r['wire_error_max_s']):>8} "
            f"{_ms(r['ref_wire_error_p99_s']):>8} {_ms(r['loop_lag_p99_s']):>8} "
            f"{r['cpu_s']:>6.1f} {r['cpu_share'] * 100:>5.0f}%"
        )
    print(
        "|err|: probe - reference, paired by tick; wire: probe - its own requests on the wire; "
        "ref wire: the same for the reference; loop: lag of the stream clients' event loop"
    )
    worst = next((r for r in levels if r["clients"] == 500), None)
    if worst is not None and worst["wire_error_p99_s"] is not None:
        ok = worst["wire_error_p99_s"] < 0.005
        print(f"target (500 clients, wire error p99 < 5 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
