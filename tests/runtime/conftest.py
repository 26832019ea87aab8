"""Real servers for the runtime tests: started on free ports, stopped by PID at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import ROOT

from hangdoctor.probe.server import ManagedServer


@pytest.fixture
def servers() -> Iterator[list[ManagedServer]]:
    """The servers a test started (see `start_server`); each is stopped at teardown."""
    started: list[ManagedServer] = []
    yield started
    for server in started:
        server.stop(grace=1.0)


def start_server(
    started: list[ManagedServer], argv: list[str], port: int, **env: str
) -> ManagedServer:
    """Start `argv` (listening on `port`) from the repository root; wait until it answers."""
    server = ManagedServer(
        argv,
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"NEWSROOM_UPSTREAM_DELAY": "3", "PYTHONUNBUFFERED": "1", **env},
        ready_timeout=40.0,
    )
    started.append(server)
    return server.start()
