"""`diagnose` of real servers that do not get the CPU they want: busy stays busy, starved is said.

Two kinds of contention, both made on purpose so that they happen every time:
busy-loop processes sharing the server's one CPU (tests/contention.py pins
`cores + 1` of them with it), and a CPU limit on the server's cgroup, the way a
Kubernetes limit throttles a container (2 ms per second here). The real CLI, the
real py-spy and a real uvicorn run the newsroom example.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import Background, ServerFactory, diagnose_json, newsroom_argv
from tests.contention import burning, contended_cpu, cpu_limited, pinned_argv

from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = pytest.mark.e2e


def _crowded_server(newsroom: ServerFactory) -> tuple[ManagedServer, int]:
    cpu = contended_cpu()
    return newsroom(argv=pinned_argv(newsroom_argv(free_port()), cpu)), cpu


def _wait_until_blocked(base: str) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not timed_get(base + "/health", timeout=0.5).ok:
            return
        time.sleep(0.05)
    raise AssertionError("the route never blocked the loop")


@pytest.fixture
def health_load() -> Iterator[list[str]]:
    """Clients that keep asking a server's /health (put its base URL in the list)."""
    bases: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            if bases:
                timed_get(bases[0] + "/health", timeout=3.0)
            else:
                time.sleep(0.01)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    yield bases
    stop.set()
    for t in threads:
        t.join(timeout=10)


def _loop_cpu(out: dict[str, Any]) -> dict[str, float]:
    (loop,) = out["loops"]
    assert loop["cpu"] is not None, out
    return loop["cpu"]  # type: ignore[no-any-return]


def test_cpu_route_on_a_crowded_cpu_is_busy_at_the_route(
    newsroom: ServerFactory, background: Background
) -> None:
    """GIVEN CPU work on the loop of a server that gets a quarter of a CPU WHEN diagnosed
    THEN busy, HD501 in the route, and the time it waited for a CPU is counted and said."""
    server, cpu = _crowded_server(newsroom)
    with burning(cpu):
        background.get(f"{server.base_url}/causes/cpu?seconds=8", timeout=60)
        _wait_until_blocked(server.base_url)
        status, out = diagnose_json(server.pid)
    background.join(timeout=60)
    assert (status, out["verdict"]) == (1, "busy"), out
    (finding,) = out["findings"]
    assert finding["code"] == "HD501" and finding["file"].endswith("api/routes/causes.py")
    assert finding["function"] in ("cpu_on_loop", "_rank")
    use = _loop_cpu(out)
    # it wanted the CPU nearly all the time, and spent a good part of that waiting for one
    assert (use["on_cpu_s"] + use["waiting_for_cpu_s"]) / use["wall_s"] >= 0.5, use
    assert use["waiting_for_cpu_s"] >= 0.2 * use["wall_s"], use
    if use["waiting_for_cpu_s"] > use["on_cpu_s"]:  # it got less than half: the report says so
        assert "waited for a CPU" in finding["message"], finding["message"]


def test_an_idle_server_on_a_crowded_cpu_is_healthy(newsroom: ServerFactory) -> None:
    """GIVEN an idle server sharing its CPU with busy loops WHEN diagnosed THEN healthy."""
    server, cpu = _crowded_server(newsroom)
    with burning(cpu):
        for _ in range(2):
            status, out = diagnose_json(server.pid)
            assert (status, out["verdict"], out["findings"]) == (0, "healthy", []), out


def test_a_throttled_loop_is_starved_of_cpu_not_busy(
    newsroom: ServerFactory, health_load: list[str]
) -> None:
    """GIVEN a loaded server throttled to 2 ms of CPU a second (a container's CPU limit)
    WHEN diagnosed THEN no cause is named: it says the loop is starved of CPU, with the figures.

    Throttled in the middle of answering, the loop's stack stays put in asyncio's own
    code between samples because it does not run; that used to read as busy (HD501).
    """
    server = newsroom()
    health_load.append(server.base_url)
    time.sleep(0.5)  # the clients keep the loop answering: it is throttled inside a callback
    extra = ["--samples", "2", "--interval", "0.2"]  # py-spy pauses it: diagnose's default
    period_s = 1.0
    with cpu_limited(server.pid, quota_s=0.002, period_s=period_s) as limit:
        limit.wait_for_throttle()
        status, out = diagnose_json(server.pid, *extra)
    assert (status, out["verdict"], out["findings"]) == (0, "healthy", []), out
    use = _loop_cpu(out)
    # hardly running, and waiting for a CPU the rest of the time but for the wait still
    # going on at the last read: the kernel counts a wait when it ends, so up to one
    # throttling period of it is missing (seen: 0.99 s of waiting in 2.0 s)
    assert use["on_cpu_s"] < 0.05 * use["wall_s"], use
    assert use["waiting_for_cpu_s"] >= 0.9 * (use["wall_s"] - period_s), use
    notes = " ".join(out["notes"])
    assert "starved of CPU" in notes and "waited for a CPU" in notes, notes
