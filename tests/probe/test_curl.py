"""Another program as the stream client: curl opens the stream and gives up; the probe sees it.

With `clients=0` the probe only times health, which is how it is used when
something else (curl, a browser) drives the streams.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
from tests.conftest import ServerFactory
from tests.probe._servers import quick_config
from tests.probe.test_engine import assert_hd101_caught

from hangdoctor.probe.engine import probe

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]


def test_curl_disconnect_is_detected(newsroom: ServerFactory) -> None:
    """curl -N --max-time 1 drops the buggy stream; the health-only probe fails with HD101."""
    server = newsroom()
    finished: list[subprocess.CompletedProcess[bytes]] = []

    def run_curl() -> None:
        finished.append(
            subprocess.run(
                ["curl", "-sN", "--max-time", "1", server.base_url + "/news/stream"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        )

    curl = threading.Timer(0.5, run_curl)
    curl.start()
    try:
        result = probe(quick_config(server.base_url, clients=0, streams=(), duration_s=4.0))
    finally:
        curl.join(15)
    assert finished and finished[0].returncode == 28  # curl: operation timed out, as asked
    assert b"data: connected" in finished[0].stdout
    assert result.streams == ()
    assert_hd101_caught(result)
    assert result.health[0].latency_s < result.config.stall_threshold_s  # fine before curl
