"""The watchdog on a crowded CPU: CPU work is still HD501, a wait is still a wait.

Each test pins the loop (in this process, or a real uvicorn under `hangdoctor
watch`) to one CPU together with `cores + 1` busy-loop processes (see
tests/contention.py), so the loop thread gets at most about a quarter of that
CPU. Its CPU clock alone then says "mostly not running" even while it computes;
the CPU it wanted (on a CPU plus waiting for one) says CPU-bound.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import expected, newsroom_argv
from tests.contention import burning, contended_cpu, pinned_argv, pinned_thread
from tests.runtime.conftest import start_server

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.runtime import LoopWatchdog, StallRecord

THRESHOLD = 0.1
BLOCK = 0.6
HERE = str(Path(__file__).resolve())


def _line_of(marker: str) -> int:
    for n, text in enumerate(Path(HERE).read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(f"# wd: {marker}"):
            return n
    raise AssertionError(f"no line marked {marker}")


async def _compute() -> None:
    deadline = time.monotonic() + BLOCK
    total = 0
    while time.monotonic() < deadline:  # wd: cpu
        total += sum(range(200))


async def _sleep() -> None:
    time.sleep(BLOCK)  # wd: sleep


def _stall_on_crowded_cpu(body: Any) -> list[StallRecord]:
    """Run `body` on a loop pinned, with its watchdog, to a CPU that busy loops crowd."""

    async def main() -> list[StallRecord]:
        async with LoopWatchdog(THRESHOLD, log=False) as dog:
            await asyncio.sleep(0.05)
            await body()
            await asyncio.sleep(0.1)
        return list(dog.records)

    cpu = contended_cpu()
    with burning(cpu), pinned_thread(cpu):
        return asyncio.run(main())


def _the_long_one(records: list[StallRecord]) -> StallRecord:
    """The stall the body caused; a crowded CPU adds short ones of its own around it."""
    long = [r for r in records if r.duration >= BLOCK / 2]
    assert len(long) == 1, [r.summary() for r in records]
    return long[0]


def test_cpu_work_on_a_crowded_cpu_is_hd501_busy_at_its_line() -> None:
    """CPU work on the loop that gets only a share of a CPU is still HD501, busy, at its line.

    Before, the loop thread's CPU clock (about a quarter of the wall time here) read as
    a wait and the stall came out as HD900 blocked.
    """
    record = _the_long_one(_stall_on_crowded_cpu(_compute))
    assert (record.code, record.state, record.file) == ("HD501", "busy", HERE), record.summary()
    assert record.line in (_line_of("cpu"), _line_of("cpu") + 1)
    assert record.function == "_compute"
    assert record.samples >= 2


def test_a_sleep_on_a_crowded_cpu_is_still_hd201_blocked() -> None:
    """Counting the time spent waiting for a CPU does not turn a sleeping loop into a busy one."""
    record = _the_long_one(_stall_on_crowded_cpu(_sleep))
    assert (record.code, record.state, record.line) == ("HD201", "blocked", _line_of("sleep"))


@pytest.mark.e2e
def test_watch_reports_the_cpu_route_as_hd501_under_contention(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    """A real uvicorn under `hangdoctor watch` on a crowded CPU: GET /causes/cpu is HD501, busy."""
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    cpu = contended_cpu()
    watch = [sys.executable, "-m", "hangdoctor", "watch", "--threshold", "0.2", "--out", str(out)]
    argv = pinned_argv([*watch, "--", *newsroom_argv(port)], cpu)
    server = start_server(servers, argv, port)
    with burning(cpu):
        got = timed_get(f"{server.base_url}/causes/cpu?seconds=1.0", timeout=30)
        assert got.ok, got
        records = _records(out, lambda r: r["blocked_for_s"] >= 0.5)
    assert len(records) == 1, records
    record = records[0]
    exp = expected("HD501")
    assert (record["code"], record["state"]) == ("HD501", "busy"), record["message"]
    # the work is the route's loop and the `_rank` it calls: caught on whichever line it was on
    assert record["file"].endswith(exp.file)
    assert record["function"] in ("cpu_on_loop", "_rank"), record
    assert record["pid"] == server.pid


def _records(out: Path, wanted: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The records in `out` that `wanted` picks, once there is one (bounded wait)."""
    deadline = time.monotonic() + timeout
    picked: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        text = out.read_text(encoding="utf-8") if out.exists() else ""
        picked = [r for r in map(json.loads, filter(str.strip, text.splitlines())) if wanted(r)]
        if picked:
            time.sleep(0.3)  # let a second, wrong record show up if there is one
            text = out.read_text(encoding="utf-8")
            return [r for r in map(json.loads, filter(str.strip, text.splitlines())) if wanted(r)]
        time.sleep(0.1)
    return picked
