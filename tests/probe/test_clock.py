"""The health clock child: its schedule, its late reports, and that it never outlives the probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.probe._servers import TinyServer

from hangdoctor.probe.clock import ClockConfig
from hangdoctor.probe.clock_process import ClockProcess
from hangdoctor.probe.sse_client import build_request


@pytest.fixture
def tiny() -> Iterator[TinyServer]:
    """A local server: /health answers at once, /silent never."""
    with TinyServer() as server:
        yield server


def _config(server: TinyServer, path: str, **overrides: Any) -> ClockConfig:
    port = int(server.url.rsplit(":", 1)[1])
    values: dict[str, Any] = {
        "address": "127.0.0.1",
        "port": port,
        "request": build_request("GET", path, f"127.0.0.1:{port}").decode("latin-1"),
        "tls": False,
        "server_hostname": "127.0.0.1",
        "insecure": False,
        "t0": 0.0,
        "interval_s": 0.1,
        "timeout_s": 0.6,
        "stall_s": 0.2,
        "duration_s": 0.5,
    }
    values.update(overrides)
    return ClockConfig(**values)


async def _run(
    config: ClockConfig, *, stop_after: float | None = None, codes: list[int | None] | None = None
) -> list[list[Any]]:
    reports: list[list[Any]] = []
    clock = ClockProcess(reports.append)
    await clock.start()
    try:
        clock.begin(ClockConfig(**{**config.__dict__, "t0": time.monotonic()}))
        if stop_after is not None:
            await asyncio.sleep(stop_after)
            clock.stop()
        else:
            await clock.wait_end(10.0)
    finally:
        clock.stop()
        if codes is not None:
            codes.append(clock.returncode)
    return reports


def test_schedule_and_reports(tiny: TinyServer) -> None:
    """One request per tick, on a fixed schedule, each reported when it starts and ends."""
    reports = asyncio.run(_run(_config(tiny, "/health")))
    starts = [r for r in reports if r[0] == "start"]
    done = [r for r in reports if r[0] == "done"]
    assert [r[1] for r in starts] == [0, 1, 2, 3, 4]  # 0.5 s at 100 ms: ticks 0..4
    assert sorted(r[1] for r in done) == [0, 1, 2, 3, 4]
    assert all(r[4] == 200 and r[5] is False and r[6] is None for r in done)
    assert [r[2] for r in starts] == sorted(r[2] for r in starts)
    assert not [r for r in reports if r[0] == "late"]


def test_late_then_timed_out(tiny: TinyServer) -> None:
    """A request that gets no answer is reported late at the stall threshold, then timed out."""
    reports = asyncio.run(_run(_config(tiny, "/silent", duration_s=0.05)))
    kinds = [r[0] for r in reports]
    assert kinds == ["start", "late", "done"]
    late, done = reports[1], reports[2]
    assert late[2] == done[2]  # both name the same start
    assert done[4] is None and done[5] is True


def test_stops_when_its_stdin_closes(tiny: TinyServer) -> None:
    """Closing the clock's stdin stops it at once, in the middle of a long schedule."""
    started = time.monotonic()
    codes: list[int | None] = []
    config = _config(tiny, "/health", duration_s=60.0)
    reports = asyncio.run(_run(config, stop_after=0.3, codes=codes))
    assert codes == [0]  # it ended by itself, it was not killed
    assert time.monotonic() - started < 30  # not the 60 s schedule
    assert 1 <= len([r for r in reports if r[0] == "start"]) < 100
