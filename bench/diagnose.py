"""Benchmark: time to a verdict on a blocked newsroom process, against raw py-spy.

Run: .venv/bin/python bench/diagnose.py [--rounds 5]

Measured side by side in one run, on the same blocked process:
  raw      the py-spy calls `diagnose` makes (3 x `py-spy dump --json --locals`,
           0.4 s apart), run directly: the floor
  library  hangdoctor.live.diagnose_processes (preflight + sampling + analysis)
           plus rendering, in process: time beyond sampling is hangdoctor's own cost
  cli      `hangdoctor diagnose --pid P --format json` as a user runs it
  pause    how long each py-spy sample stops the target, from a ticker thread
           inside the target that records gaps in its own clock
Targets (issue 2): a verdict within 1.5 s with the default samples, analysis and
rendering under 0.3 s beyond sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "newsroom"
sys.path.insert(0, str(ROOT / "src"))

from hangdoctor.capture.procs import expand_targets  # noqa: E402
from hangdoctor.capture.pyspy import find_pyspy  # noqa: E402
from hangdoctor.live import LiveOptions, diagnose_processes  # noqa: E402
from hangdoctor.probe.http import abort_stream, timed_get  # noqa: E402
from hangdoctor.probe.server import ManagedServer, free_port  # noqa: E402
from hangdoctor.report.json_report import diagnosis_to_json  # noqa: E402
from hangdoctor.report.terminal import render_terminal  # noqa: E402


def _blocked_server() -> ManagedServer:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("_ticker_target.py")), str(APP_DIR)]
    server = ManagedServer(
        [*argv, str(port)],
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"NEWSROOM_UPSTREAM_DELAY": "300", "PYTHONUNBUFFERED": "1"},
    )
    server.start()
    abort_stream(server.base_url + "/news/stream", after=0.5)
    deadline = time.monotonic() + 5
    while timed_get(server.base_url + "/health", timeout=0.3).ok:
        if time.monotonic() > deadline:
            server.stop()
            raise SystemExit("the newsroom app did not block")
    return server


def _raw(pid: int, pyspy: str, windows: list[tuple[float, float]]) -> float:
    start = time.monotonic()
    for i in range(3):
        if i:
            time.sleep(0.4)
        t0 = time.time()
        subprocess.run(
            [pyspy, "dump", "--json", "--locals", "--pid", str(pid)],
            capture_output=True,
            timeout=10,
            check=True,
        )
        windows.append((t0, time.time()))
    return time.monotonic() - start


def _library(pid: int) -> tuple[float, float, float]:
    """(total, sampling, render) seconds of one in-process diagnosis with rendering."""
    from rich.console import Console

    start = time.monotonic()
    result = diagnose_processes(expand_targets(pid), LiveOptions())
    r0 = time.monotonic()
    console = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115
    console.print(render_terminal(result.diagnosis, width=120))
    diagnosis_to_json(result.diagnosis)
    console.file.close()
    render = time.monotonic() - r0
    assert result.diagnosis.verdict.value == "blocked", result.diagnosis
    return time.monotonic() - start, result.sampling_s, render


def _cli(pid: int) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hangdoctor", "diagnose", "--pid", str(pid), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    took = time.monotonic() - start
    assert proc.returncode == 1 and json.loads(proc.stdout)["verdict"] == "blocked", proc.stderr
    return took


def _pauses(
    server: ManagedServer, windows: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Longest ticker gap inside each py-spy window, and inside a control window of the same
    length 0.2 s later (no py-spy running): the difference is what a sample costs the target."""
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline and not line.startswith("["):
        for text in server.log_path.read_text().splitlines():
            if text.startswith("["):
                line = text
        time.sleep(0.1)
    gaps = [(float(t), float(g)) for t, g in json.loads(line or "[]")]

    def longest(start: float, end: float) -> float:
        return max((g for t, g in gaps if start - 0.01 <= t <= end + 0.05), default=0.0)

    sampled = [longest(start, end) for start, end in windows]
    control = [longest(start + 0.2, end + 0.2) for start, end in windows]
    return sampled, control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pyspy = find_pyspy()
    server = _blocked_server()
    raw_t: list[float] = []
    lib_t: list[tuple[float, float, float]] = []
    cli_t: list[float] = []
    windows: list[tuple[float, float]] = []
    try:
        for _ in range(args.rounds):
            raw_t.append(_raw(server.pid, pyspy, windows))
            lib_t.append(_library(server.pid))
            cli_t.append(_cli(server.pid))
        pauses, control = _pauses(server, windows)
    finally:
        server.stop(grace=0.5)

    med = statistics.median
    raw = med(raw_t)
    total = med(t for t, _, _ in lib_t)
    sampling = med(s for _, s, _ in lib_t)
    render = med(r for _, _, r in lib_t)
    beyond = med(t - s for t, s, _ in lib_t)
    cli = med(cli_t)
    print(f"hangdoctor diagnose benchmark: {args.rounds} rounds, medians, blocked newsroom app")
    print(f"  raw py-spy calls (3 x dump --json --locals)  {raw:6.3f} s")
    print(
        f"  library: total to verdict + render           {total:6.3f} s  ({total / raw:.2f}x raw)"
    )
    print(f"           of which sampling                    {sampling:6.3f} s")
    print(f"           beyond sampling (preflight+analysis+render) {beyond:6.3f} s")
    print(f"           rendering alone                      {render:6.3f} s")
    print(f"  cli: hangdoctor diagnose --format json       {cli:6.3f} s  ({cli / raw:.2f}x raw)")
    if pauses:
        print(
            f"  pause per sample in the target: median {med(pauses) * 1000:.1f} ms, "
            f"max {max(pauses) * 1000:.1f} ms over {len(pauses)} samples "
            f"(control windows without py-spy: median {med(control) * 1000:.1f} ms)"
        )
    ok_verdict = cli <= 1.5
    ok_beyond = beyond <= 0.3
    print(f"  target verdict <= 1.5 s (cli): {'met' if ok_verdict else 'MISSED'}")
    print(f"  target beyond sampling <= 0.3 s: {'met' if ok_beyond else 'MISSED'}")


if __name__ == "__main__":
    main()
