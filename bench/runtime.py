"""Benchmark: what the runtime protection costs a service, and how fast it sees a stall.

Run: .venv/bin/python bench/runtime.py [--rounds 12] [--seconds 2] [--counted 300] [--soak 600]

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
              CPU time per request, median and quartiles over the rounds; this
              machine's drift (tens of percent) is far above the 1% target, so:
  instructions  one server under callgrind (`apt-get install valgrind`) switched
              between none, a do-nothing ASGI middleware, HangdoctorMiddleware
              and middleware + watchdog: the instructions each configuration
              executes per hello-world request (they do not drift), the
              watchdog's instructions per second against the bare server's at
              the measured rate, and the watchdog thread's CPU time (kernel
              included) from /proc in a loaded server
  idle        the watchdog's CPU time on an idle loop (its 100 wake-ups a second)
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
import http.client
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hangdoctor.probe.server import ManagedServer, free_port  # noqa: E402
from hangdoctor.runtime import LoopWatchdog, StallRecord  # noqa: E402

MODES = ["none", "watchdog", "full", "asyncio-debug", "aiodebug"]
DETECT_THRESHOLD = 0.04
STALLS_MS = (50, 200, 1000)
PHASES = ("none", "passthrough", "middleware", "full")  # what _runtime_app.Phases switches


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


def throughput(rounds: int, seconds: float) -> float:
    """Print the paired comparison; return the bare server's median GET rate."""
    if shutil.which("wrk") is None:
        print("  (wrk is not installed: the GET load comes from a Python client, which is")
        print("   slower than the server and makes the figures noisy; `apt-get install wrk`)")
    modes = [m for m in MODES if m != "aiodebug" or importlib.util.find_spec("aiodebug")]
    if "aiodebug" not in modes:
        print("  (aiodebug is not installed: `pip install aiodebug` to compare with it)")
    servers = {mode: _server(mode) for mode in modes}
    get_rate = 0.0
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
                f"  {'mode':<15}{'req/s':>8}{'throughput vs none':>24}{'CPU/request vs none':>26}"
            )
            print(f"  {'':<15}{'median':>8}{'median  [quartiles]':>24}{'median  [quartiles]':>26}")
            for mode in modes:
                med = statistics.median(rates[mode])
                if mode == "none":
                    print(f"  {mode:<15}{med:>8.0f}")
                    get_rate = get_rate or med
                    continue
                print(f"  {mode:<15}{med:>8.0f}{_spread(speed[mode]):>24}{_spread(cost[mode]):>26}")
    finally:
        for server in servers.values():
            server.stop(grace=1.0)
    return get_rate


def instructions(
    native_rate: float, thread_share: float, requests: int = 300, rounds: int = 4
) -> None:
    """What each configuration costs per request, in instructions counted by callgrind.

    Time cannot resolve 1% on this machine: its speed drifts by tens of percent
    between seconds, and even requests taking turns in one server differ by a
    few microseconds from one run to the next. Instructions do not drift. One
    server (`_runtime_app.Phases`) runs under callgrind; per round, each
    configuration serves `requests` keep-alive GETs from this process between
    a `callgrind_control --zero` and a `--dump`, so the count is the server's
    own work for exactly those requests. The watchdog's work follows the clock,
    not the requests (100 heartbeats a second, a monitor wake-up per
    threshold): its instructions per second of the `full` phase, against the
    instructions per second the bare server executes at `native_rate`, is its
    share of a loaded server.
    """
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        print("\n  (instruction counts skipped: they need valgrind, `apt-get install valgrind`)")
        return
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="hd-callgrind-"))
    argv = [
        valgrind, "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", "--dump-instr=no",
        sys.executable, "-m", "uvicorn", "_runtime_app:app", "--app-dir", str(ROOT / "bench"),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio",
        "--no-access-log", "--log-level", "error",
    ]  # fmt: skip
    env = {"HD_BENCH_MODE": "phases", "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT / "bench")}
    server = ManagedServer(
        argv, base_url=f"http://127.0.0.1:{port}", cwd=str(ROOT), env=env,
        ready_path="/hello", ready_timeout=600,
    )  # fmt: skip
    per_request: dict[str, list[float]] = {p: [] for p in PHASES}
    dog_per_second: list[float] = []
    server.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:

        def get(path: str) -> None:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path} answered {resp.status}")

        def counted() -> int:
            """Dump the counters; the instructions since the last zero."""
            before = set(out.iterdir())
            subprocess.run([control, "--dump", str(server.pid)], capture_output=True, timeout=120)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for new in set(out.iterdir()) - before:
                    text = new.read_text(errors="replace")
                    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
                    if found:
                        return int(found.group(1))
                time.sleep(0.2)
            raise RuntimeError("callgrind wrote no dump within 120 s")

        for _ in range(50):
            get("/hello")
        for r in range(rounds + 1):  # round 0 warms every phase up and is not counted
            for phase in PHASES if r % 2 else PHASES[::-1]:
                get(f"/_bench/phase?{phase}")
                subprocess.run(
                    [control, "--zero", str(server.pid)], capture_output=True, timeout=120
                )
                began = time.monotonic()
                for _ in range(requests):
                    get("/hello")
                seconds = time.monotonic() - began
                total = counted()
                if r:
                    per_request[phase].append(total / requests)
                    if phase == "full":
                        dog_per_second.append((total, seconds))
    finally:
        conn.close()
        server.stop(grace=5.0)
        shutil.rmtree(out, ignore_errors=True)
    med = {p: statistics.median(v) for p, v in per_request.items()}
    base = med["none"]
    print(
        f"\n  instructions per hello-world GET, counted by callgrind in one uvicorn server "
        f"({rounds} rounds x {requests} requests per configuration; medians)"
    )
    print(f"  {'configuration':<24}{'per request':>13}{'extra':>9}{'share':>9}")
    for phase in PHASES:
        extra = med[phase] - base
        share = "" if phase == "none" else f"{extra / base * 100:+.2f}%"
        label = {"full": "middleware + watchdog *"}.get(phase, phase)
        print(f"  {label:<24}{med[phase]:>13,.0f}{extra:>+9,.0f}{share:>9}")
    print(
        "  * the watchdog's work follows the clock, and under callgrind a request takes"
        " ~50x longer: its share is worked out per second below, not from this row"
    )
    # the watchdog's own work: the full phase beyond the middleware's per-request count
    rates = [(total - med["middleware"] * requests) / seconds for total, seconds in dog_per_second]
    dog_rate = max(0.0, statistics.median(rates))
    dog_share = dog_rate / (native_rate * base)
    mw_share = (med["middleware"] - base) / base
    print(
        f"  watchdog: {dog_rate / 1e6:.2f} M instructions per second (its heartbeat and monitor"
        f" thread), {dog_share * 100:.2f}% of the bare server at {native_rate:.0f} req/s"
    )
    total = mw_share + dog_share + thread_share
    print(
        f"  middleware + watchdog at {native_rate:.0f} req/s: {(mw_share + dog_share) * 100:.2f}%"
        f" of the bare server's instructions; with the watchdog thread's measured CPU time"
        f" added on top (its kernel time, and its user time a second time): {total * 100:.2f}%"
    )
    print("  target (issue 5): watchdog + middleware cost at most 1% of throughput")


def watchdog_thread_cpu(seconds: float = 10.0) -> float:
    """The monitor thread's CPU time (kernel included) in a loaded server, as a share.

    Callgrind counts user-space instructions only; waking a thread four times a
    second in a process whose loop thread holds the GIL also costs system calls
    and two GIL hand-offs per wake-up. This reads the thread's run time from
    /proc/<pid>/task/<tid>/schedstat (nanoseconds) across a wrk run.
    """
    server = _server("watchdog")
    main = str(server.pid)
    try:
        port = _port(server)
        _load(port, "/hello", 1.0, 32, False)

        def run_times() -> dict[str, float]:
            times = {}
            for tid in os.listdir(f"/proc/{server.pid}/task"):
                stat = Path(f"/proc/{server.pid}/task/{tid}/schedstat").read_text()
                times[tid] = int(stat.split()[0]) / 1e9
            return times

        before, began = run_times(), time.monotonic()
        _load(port, "/hello", seconds, 32, False)
        after, took = run_times(), time.monotonic() - began
    finally:
        server.stop(grace=1.0)
    loop_share = (after[main] - before[main]) / took
    others = sum(after[t] - before.get(t, 0.0) for t in after if t != main) / took
    print(
        f"\n  watchdog thread under load: {others * 1000:.2f} ms of CPU per second "
        f"({others / max(loop_share, 1e-9) * 100:.3f}% of the loop thread's {loop_share:.0%})"
    )
    return others / max(loop_share, 1e-9)


def heartbeat_cost(seconds: float = 3.0, rounds: int = 5) -> None:
    """The watchdog's own CPU time on an idle loop: the most its heartbeat can cost.

    An idle loop sleeps in epoll; with the watchdog it wakes every 10 ms for the
    heartbeat. Under load the loop is awake anyway, so this is an upper bound.
    """

    async def idle(watch: bool) -> float:
        dog = LoopWatchdog(0.25, log=False).start() if watch else None
        began = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - began
        if dog is not None:
            await dog.aclose()
        return used / seconds

    async def run() -> tuple[list[float], list[float]]:
        bare, watched = [], []
        for _ in range(rounds):
            bare.append(await idle(False))
            watched.append(await idle(True))
        return bare, watched

    bare, watched = asyncio.run(run())
    extra = statistics.median(watched) - statistics.median(bare)
    print(
        f"\n  watchdog on an idle loop: {extra * 1000:.2f} ms of CPU per second "
        f"({extra * 100:.3f}% of one core; heartbeat every 10 ms, {rounds} x {seconds:g} s)"
    )


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
    parser.add_argument(
        "--counted", type=int, default=300, help="requests per configuration under callgrind"
    )
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds (0 skips it)")
    args = parser.parse_args()
    print(f"hangdoctor runtime benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    native_rate = throughput(args.rounds, args.seconds)
    thread_share = watchdog_thread_cpu()
    instructions(native_rate, thread_share, requests=args.counted)
    heartbeat_cost()
    detection()
    soak(args.soak)
