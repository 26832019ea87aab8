"""`hangdoctor watch` on Python 3.14: the in-process watchdog names the stall in a 3.14 server.

hangdoctor is installed from the wheel in its own venv on 3.14 inside the root and runs
the newsroom app from another venv, as `watch -- uvicorn ...` would in a container
image: the watchdog is started in the server by the start-up hook, and its stall
records are written to a folder bind-mounted from the host.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import expected
from tests.jsonl import whole_records
from tests.py314.conftest import Start314, uvicorn_argv
from tests.runtime.test_patterns import PATTERNS

from hangdoctor.probe.http import abort_stream, timed_get

pytestmark = pytest.mark.e2e

BLOCK_S = 0.8


def _records(out: Path, code: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The stall records with `code` once there is one (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.is_file():
            found = [r for r in whole_records(out) if r["code"] == code]
            if found:
                return found
        time.sleep(0.1)
    text = out.read_text(encoding="utf-8") if out.is_file() else "(no file)"
    raise AssertionError(f"no {code} stall record in {timeout:g} s: {text[-2000:]}")


def test_watch_names_the_stall_on_314(
    start314: Start314, hangdoctor314: str, tmp_path: Path
) -> None:
    """GIVEN `hangdoctor watch` (on 3.14) running the newsroom app under python3.14
    WHEN a handler sleeps on the loop and a stream is dropped
    THEN each stall is recorded with its cause at the example's line."""
    outdir = tmp_path / "out"
    outdir.mkdir()

    def argv(python: str, port: int) -> list[str]:
        watch = [hangdoctor314, "watch", "--threshold", "0.2", "--out", "/mnt/out/stalls.jsonl"]
        return [*watch, "--", *uvicorn_argv(python, port)]

    target = start314(argv, binds=(f"{outdir}:/mnt/out",), env={"NEWSROOM_UPSTREAM_DELAY": "3"})
    out = outdir / "stalls.jsonl"
    got = timed_get(f"{target.base_url}/causes/sleep?seconds={BLOCK_S}", timeout=20)
    assert got.ok, got
    (sleep, *_) = _records(out, "HD201")
    assert sleep["file"].endswith(expected("HD201").file)
    assert sleep["line"] == expected("HD201").line
    assert BLOCK_S * 0.8 <= sleep["blocked_for_s"] < BLOCK_S + 3

    abort_stream(target.base_url + "/news/stream", after=0.5)
    (join, *_) = _records(out, "HD101")
    assert join["file"].endswith(expected("HD101").file)
    assert join["line"] == expected("HD101").line
    assert join["waits_for"]["line"] == expected("worker").line
    assert "watching the event loop of pid" in target.server.log_tail(50)


@pytest.mark.parametrize("name", list(PATTERNS))
def test_watch_names_the_hang_patterns_on_314(
    start314: Start314, hangdoctor314: str, tmp_path: Path, name: str
) -> None:
    """GIVEN `hangdoctor watch --stuck-after 1` (on 3.14) running the hang patterns app under
    python3.14 WHEN a pattern's requests hang THEN its one stuck record, as on the host."""
    from tests.runtime.test_patterns import _check, _provoke, _wait

    outdir = tmp_path / "out"
    outdir.mkdir()

    def argv(python: str, port: int) -> list[str]:
        watch = [hangdoctor314, "watch", "--stuck-after", "1", "--out", "/mnt/out/records.jsonl"]
        app = [
            python, "-m", "uvicorn", "patterns_app:app", "--app-dir", "tests/runtime/apps",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ]  # fmt: skip
        return [*watch, "--", *app]

    target = start314(argv, binds=(f"{outdir}:/mnt/out",))
    pattern = PATTERNS[name]
    sockets = _provoke(target.server, pattern)
    try:
        stuck = _wait(lambda: whole_records(outdir / "records.jsonl"), pattern.code)
        mine = [x for x in stuck if x["code"] == pattern.code]
        assert len(mine) == 1, stuck
        _check(mine[0], pattern, target.server)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("name", list(PATTERNS))
def test_the_middleware_names_the_hang_patterns_on_314(start314: Start314, name: str) -> None:
    """GIVEN the hang patterns app with HangdoctorMiddleware(stuck_after=1) under python3.14
    WHEN a pattern's requests hang THEN its debug page lists the one stuck record."""
    from tests.runtime.test_patterns import TOKEN, check_through_middleware

    def argv(python: str, port: int) -> list[str]:
        return [
            python, "-m", "uvicorn", "patterns_app:watched", "--app-dir", "tests/runtime/apps",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ]  # fmt: skip

    target = start314(argv, env={"PATTERNS_DEBUG_TOKEN": TOKEN})
    check_through_middleware(target.server, PATTERNS[name])
