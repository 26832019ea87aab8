"""Where `hangdoctor watch` puts a stall record: never lost, never carrying a secret.

A real server (tests/runtime/apps/plain_server.py) blocks its loop on a line that
quotes `--api-token=...` and `Authorization: Bearer ...`; the records watch writes to
`--out`, or to stderr, must show that line scrubbed. On a full disk, the record that
cannot be appended goes to the server's stderr as one line, with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.runtime.apps.plain_server import SECRETS
from tests.runtime.conftest import start_server

from hangdoctor.capture.redact import REDACTED
from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = pytest.mark.e2e

PLAIN_SERVER = Path(__file__).parent / "apps" / "plain_server.py"
CANNOT_APPEND = "cannot append to"


def _watched(servers: list[ManagedServer], out: Path | None) -> ManagedServer:
    port = free_port()
    argv = [sys.executable, "-m", "hangdoctor", "watch", "--threshold", "0.2"]
    argv += ["--out", str(out)] if out is not None else []
    argv += ["--", sys.executable, str(PLAIN_SERVER), str(port)]
    return start_server(servers, argv, port)


def _stall(server: ManagedServer) -> None:
    assert timed_get(f"{server.base_url}/sleep", timeout=20).ok


def _wait_for(read: Callable[[], str], what: str, timeout: float = 15.0) -> str:
    """The text `read()` returns once it contains `what` (bounded)."""
    deadline = time.monotonic() + timeout
    text = read()
    while what not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = read()
    return text


def test_records_in_out_carry_no_secrets(servers: list[ManagedServer], tmp_path: Path) -> None:
    """The JSONL record quotes the stalled line with its token and bearer value masked."""
    out = tmp_path / "stalls.jsonl"
    server = _watched(servers, out)
    _stall(server)
    text = _wait_for(lambda: out.read_text(encoding="utf-8"), "_blocking_call")
    record = json.loads(text.splitlines()[0])
    assert record["function"] == "_blocking_call"
    assert f"--api-token={REDACTED}" in record["source"], record["source"]
    assert f"Bearer {REDACTED}" in record["source"], record["source"]
    assert not [s for s in SECRETS if s in text], text


def test_records_on_stderr_carry_no_secrets(servers: list[ManagedServer]) -> None:
    """Without --out, the stall's lines on the server's stderr show the line scrubbed too."""
    server = _watched(servers, None)
    _stall(server)
    log = _wait_for(lambda: server.log_tail(60), "fix: hangdoctor explain")
    assert f"--api-token={REDACTED}" in log, log
    assert not [s for s in SECRETS if s in log], log


@contextlib.contextmanager
def _full_tmpfs(where: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs mounted at `where`, filled up; unmounted on the way out."""
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * 1024)
        finally:
            os.close(fd)
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False, capture_output=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs to fill needs root")
def test_full_disk_keeps_the_record_on_one_stderr_line(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    """`--out` on a full disk: each record goes to stderr as one line, saying why; no traceback.

    It used to raise in the watchdog's listener: a traceback in the server's stderr for
    each stall, and the record lost.
    """
    with _full_tmpfs(tmp_path / "full") as full:
        with pytest.raises(OSError) as filled:
            (full / "probe").write_bytes(b"x" * 4096)
        assert filled.value.errno == errno.ENOSPC  # the premise: nothing more fits
        out = full / "stalls.jsonl"
        server = _watched(servers, out)
        pid = server.pid
        try:
            _stall(server)
            log = _wait_for(lambda: server.log_tail(60), CANNOT_APPEND)
        finally:
            server.stop(grace=1.0)  # before the unmount: the server runs on the tmpfs's file
        assert out.stat().st_size == 0  # no cut-off line either
    line = next(x for x in log.splitlines() if CANNOT_APPEND in x)
    assert f"{CANNOT_APPEND} {out} (No space left on device)" in line, line
    record = json.loads(line.split("the stall record: ", 1)[1])
    assert record["function"] == "_blocking_call" and record["pid"] == pid
    assert "Traceback" not in log and "a stall listener raised" not in log, log
