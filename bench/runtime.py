"""Benchmark: what the runtime protection costs a service, and how fast it sees a stall.

Run: .venv/bin/python bench/runtime.py [--rounds 12] [--seconds 2] [--soak 600]

Measured side by side in one run:
  throughput  a FastAPI hello-world (keep-alive GETs, from wrk: `apt-get install wrk`;
              bench/_load.py if it is missing) and the fixed newsroom SSE stream
              (open, read the first event, drop; bench/_load.py) under load from a
              separate process, one uvicorn server per mode, all up at once
              and loaded in turn, the order rotated every round:
                none        nothing installed
                watchdog    LoopWatchdog
                full        LoopWatchdog + HangdoctorMiddleware
                asyncio-debug  asyncio's debug mode (PYTHONASYNCIODEBUG=1, and
                            loop.set_debug(True): uvicorn overrides the variable)
                aiodebug    aiodebug's slow-callback logging (if it installs)
              each mode's run paired with a `none` run right before it (this
              machine's speed drifts): the change in requests/s and in the server's
              CPU time per request, median and quartiles over the rounds
  detection   stalls of 50, 200 and 1000 ms injected on a watched loop (threshold
              40 ms): time from the stall's start to the watchdog noticing it, and
              the error of the reported duration
  soak        the `full` server under both loads for --soak seconds: its RSS over
              time (first minute against the end)
Targets (issue 5): watchdog + middleware cost at most 1% of throughput; a stall
noticed within threshold + 20 ms; memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hangdoctor.probe.server import ManagedServer, free_port  # noqa: E402
from hangdoctor.runtime import LoopWatchdog, StallRecord  # noqa: E402

MODES = ["none", "watchdog", "full", "asyncio-debug", "aiodebug"]
DETECT_THRESHOLD = 0.04
STALLS_MS = (50, 200, 1000)


def _server(mode: str) -> ManagedServer:
    port = free_port()
    env = {
        "HD_BENCH_MODE": mode,
        "NEWSROOM_UPSTREAM_DELAY": "0.05",
        "PYTHONPATH": str(ROOT / "bench"),
    }
    if mode == "asyncio-debug":
        env["PYTHONASYNCIODEBUG"] = "1"
    argv = [
        sys.executable, "-m", "uvicorn", "_runtime_app:app", "--app-dir", str(ROOT / "bench"),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio",
        "--no-access-log", "--log-level", "error",
    ]  # fmt: skip
    server = ManagedServer(
        argv, base_url=f"http://127.0.0.1:{port}", cwd=str(ROOT), env=env, ready_path="/hello"
    )
    return server.start()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    server: ManagedServer, path: str, seconds: float, connections: int, stream: bool
) -> tuple[float, float]:
    """(requests per second, server CPU microseconds per request) for one load run."""
    before = _cpu_seconds(server.pid)
    rate = _load(_port(server), path, seconds, connections, stream)
    used = _cpu_seconds(server.pid) - before
    return rate, used / max(1.0, rate * seconds) * 1e6


def _load(port: int, path: str, seconds: float, connections: int, stream: bool) -> float:
    wrk = shutil.which("wrk")
    if wrk is not None and not stream:
        # a C load generator: a Python one would saturate its own core first
        argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}{path}"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=True
        )
        found = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
        if found is None:
            raise RuntimeError(f"wrk printed no rate: {done.stdout[-300:]}")
        return float(found.group(1))
    argv = [
        sys.executable, str(ROOT / "bench" / "_load.py"), path, "--port", str(port),
        "--connections", str(connections), "--seconds", str(seconds),
    ]  # fmt: skip
    if stream:
        argv.append("--stream")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = json.loads(done.stdout)
    if result["errors"]:
        print(f"    ({result['errors']} load connections failed)", file=sys.stderr)
    return float(result["requests"]) / float(result["seconds"])


def throughput(rounds: int, seconds: float) -> None:
    if shutil.which("wrk") is None:
        print("  (wrk is not installed: the GET load comes from a Python client, which is")
        print("   slower than the server and makes the figures noisy; `apt-get install wrk`)")
    modes = [m for m in MODES if m != "aiodebug" or importlib.util.find_spec("aiodebug")]
    if "aiodebug" not in modes:
        print("  (aiodebug is not installed: `pip install aiodebug` to compare with it)")
    servers = {mode: _server(mode) for mode in modes}
    try:
        for mode, server in servers.items():  # each server runs what its label says
            with urllib.request.urlopen(server.base_url + "/mode", timeout=10) as resp:
                seen = json.loads(resp.read())
            want = {"mode": mode, "asyncio_debug": mode == "asyncio-debug"}
            if seen != want:
                raise RuntimeError(f"the {mode} server runs {seen}, not {want}")
        for label, path, stream, conns in (
            ("hello-world GET", "/hello", False, 32),
            ("SSE open/read/drop", "/news/stream", True, 16),
        ):
            for mode in modes:  # warm-up: imports, caches, the first connections
                _load(_port(servers[mode]), path, 1.0, conns, stream)
            # Paired runs: this machine's speed drifts by tens of percent over minutes, so
            # each mode is compared with a `none` run right before it, in every round.
            rates: dict[str, list[float]] = {m: [] for m in modes}
            speed: dict[str, list[float]] = {m: [] for m in modes if m != "none"}
            cost: dict[str, list[float]] = {m: [] for m in modes if m != "none"}
            others = [m for m in modes if m != "none"]
            for r in range(rounds):
                for mode in others[r % len(others) :] + others[: r % len(others)]:
                    base_rate, base_cpu = _measure(servers["none"], path, seconds, conns, stream)
                    rate, cpu = _measure(servers[mode], path, seconds, conns, stream)
                    rates["none"].append(base_rate)
                    rates[mode].append(rate)
                    speed[mode].append(rate / base_rate - 1)
                    cost[mode].append(cpu / base_cpu - 1)
            print(f"\n  {label}: {rounds} rounds x {seconds:g} s, {conns} connections")
            print(
                f"  {'mode':<15}{'req/s':>8}{'throughput vs none':>22}{'CPU/request vs none':>22}"
            )
            print(f"  {'':<15}{'median':>8}{'median  [quartiles]':>22}{'median  [quartiles]':>22}")
            for mode in modes:
                med = statistics.median(rates[mode])
                if mode == "none":
                    print(f"  {mode:<15}{med:>8.0f}")
                    continue
                print(f"  {mode:<15}{med:>8.0f}{_spread(speed[mode]):>22}{_spread(cost[mode]):>22}")
    finally:
        for server in servers.values():
            server.stop(grace=1.0)


def _spread(values: list[float]) -> str:
    """Median and quartiles of relative changes, as percentages."""
    q1, med, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{med * 100:+.1f}% [{q1 * 100:+.1f},{q3 * 100:+.1f}]"


def _port(server: ManagedServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def detection(repeats: int = 10) -> None:
    print(f"\n  stall detection, threshold {DETECT_THRESHOLD * 1000:.0f} ms, {repeats} stalls each")
    print(f"  {'stall':>8}{'noticed after (p50/max)':>26}{'duration error (p50/max)':>28}")

    async def run(ms: int) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        async with LoopWatchdog(DETECT_THRESHOLD, log=False) as dog:
            for _ in range(repeats):
                await asyncio.sleep(0.1)
                begun = time.time()
                time.sleep(ms / 1000)
                await asyncio.sleep(0.1)
                record: StallRecord = dog.records[-1]
                noticed = record.started_at + record.detected_after - begun
                out.append((noticed, record.duration - ms / 1000))
        return out

    for ms in STALLS_MS:
        got = asyncio.run(run(ms))
        noticed = sorted(x[0] * 1000 for x in got)
        error = sorted(x[1] * 1000 for x in got)
        print(
            f"  {ms:>6} ms{statistics.median(noticed):>16.1f} / {noticed[-1]:.1f} ms"
            f"{statistics.median(error):>17.1f} / {max(error, key=abs):.1f} ms"
        )
    print(f"  target: noticed within {DETECT_THRESHOLD * 1000 + 20:.0f} ms (threshold + 20 ms)")


def micro(pairs: int = 41) -> None:
    """The same costs measured in one process, in short paired runs.

    A FastAPI hello-world app is called in-process (no network, no HTTP parsing:
    the denominator is smaller than a served request, so the percentages are upper
    bounds) without and with the piece under test, back to back, in alternating
    order; the median of the paired ratios cancels the machine's drift.
    """
    from fastapi import FastAPI

    from hangdoctor.runtime import HangdoctorMiddleware

    api = FastAPI()

    @api.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    wrapped = HangdoctorMiddleware(api)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"",
        "root_path": "", "headers": _REQUEST_HEADERS, "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def requests(target: Any, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await target(dict(scope), receive, send)
        return (time.perf_counter() - started) / n

    async def watched(target: Any, n: int) -> float:
        async with LoopWatchdog(0.25, log=False):
            await asyncio.sleep(0.05)  # its thread is up before the clock runs
            return await requests(target, n)

    async def run() -> tuple[list[float], list[float], list[float], float]:
        mw, dog, both, bare_all = [], [], [], []
        n = 1500
        await requests(api, n)  # warm-up
        for k in range(pairs):
            order = [0, 1, 2, 3] if k % 2 else [3, 2, 1, 0]
            got: dict[int, float] = {}
            for which in order:
                if which == 0:
                    got[0] = await requests(api, n)
                elif which == 1:
                    got[1] = await requests(wrapped, n)
                elif which == 2:
                    got[2] = await watched(api, n)
                else:
                    got[3] = await watched(wrapped, n)
            mw.append(got[1] / got[0] - 1)
            dog.append(got[2] / got[0] - 1)
            both.append(got[3] / got[0] - 1)
            bare_all.append(got[0])
        return mw, dog, both, statistics.median(bare_all)

    mw, dog, both, bare = asyncio.run(run())
    print(
        f"\n  in one process: a FastAPI hello-world called in-process ({bare * 1e6:.0f} us each),"
    )
    print(f"  median [quartiles] of {pairs} paired runs of 1500 requests:")
    for label, values in (("middleware", mw), ("watchdog", dog), ("watchdog + middleware", both)):
        print(f"  {label:<24}{_spread(values)}")
    print("  target (issue 5): watchdog + middleware cost at most 1% of throughput")


_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]
_REQUEST_HEADERS = [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(seconds: float) -> None:
    if seconds <= 0:
        return
    print(f"\n  soak: the `full` server under GET and SSE load for {seconds:g} s")
    server = _server("full")
    try:
        port = _port(server)
        step = 10.0
        samples: list[tuple[float, int]] = []
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            _load(port, "/hello", step / 2, 16, False)
            _load(port, "/news/stream", step / 2, 8, True)
            samples.append((time.monotonic() - start, _rss_kib(server.pid)))
        first = [kib for t, kib in samples if t <= 60] or [samples[0][1]]
        last = samples[-1][1]
        print(
            f"  RSS: {max(first) / 1024:.1f} MiB in the first minute, {last / 1024:.1f} MiB "
            f"at the end ({(last / max(first) - 1) * 100:+.1f}%)"
        )
        print("  every 60 s: " + " ".join(f"{kib / 1024:.1f}" for t, kib in samples[::6]) + " MiB")
    finally:
        server.stop(grace=1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds (0 skips it)")
    args = parser.parse_args()
    print(f"hangdoctor runtime benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    throughput(args.rounds, args.seconds)
    micro()
    detection()
    soak(args.soak)
