"""Benchmark: what the runtime protection costs a service, and how fast it sees a stall.

Run: .venv/bin/python bench/runtime.py [--rounds 3] [--seconds 5] [--soak 600]

Measured side by side in one run:
  throughput  a FastAPI hello-world (keep-alive GETs) and the fixed newsroom SSE
              stream (open, read the first event, drop) under load from a separate
              process (bench/_load.py), one uvicorn server per mode, all up at once
              and loaded in turn, the order rotated every round:
                none        nothing installed
                watchdog    LoopWatchdog
                full        LoopWatchdog + HangdoctorMiddleware
                asyncio-debug  PYTHONASYNCIODEBUG=1 (asyncio's debug mode)
                aiodebug    aiodebug's slow-callback logging (if it installs)
              reported as requests/s (median over rounds) and the change against none
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
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
        "HD_BENCH_MODE": "none" if mode == "asyncio-debug" else mode,
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


def _load(port: int, path: str, seconds: float, connections: int, stream: bool) -> float:
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
    modes = [m for m in MODES if m != "aiodebug" or importlib.util.find_spec("aiodebug")]
    if "aiodebug" not in modes:
        print("  (aiodebug is not installed: `pip install aiodebug` to compare with it)")
    servers = {mode: _server(mode) for mode in modes}
    try:
        for label, path, stream, conns in (
            ("hello-world GET", "/hello", False, 32),
            ("SSE open/read/drop", "/news/stream", True, 16),
        ):
            rates: dict[str, list[float]] = {m: [] for m in modes}
            for mode in modes:  # warm-up: imports, caches, the first connections
                _load(_port(servers[mode]), path, 1.0, conns, stream)
            for r in range(rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    rates[mode].append(_load(_port(servers[mode]), path, seconds, conns, stream))
            base = statistics.median(rates["none"])
            print(f"\n  {label}: {rounds} rounds x {seconds:g} s, {conns} connections")
            print(f"  {'mode':<15}{'req/s (median)':>16}{'vs none':>10}   rounds")
            for mode in modes:
                med = statistics.median(rates[mode])
                each = " ".join(f"{x:.0f}" for x in rates[mode])
                print(f"  {mode:<15}{med:>16.0f}{(med / base - 1) * 100:>+9.1f}%   {each}")
    finally:
        for server in servers.values():
            server.stop(grace=1.0)


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds (0 skips it)")
    args = parser.parse_args()
    print(f"hangdoctor runtime benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    throughput(args.rounds, args.seconds)
    detection()
    soak(args.soak)
