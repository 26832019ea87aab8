"""Deciding blocked/busy/idle per loop over samples, and what the finding says.

The snapshots here are plain data shaped like py-spy's; the golden captures in
tests/data/golden are the same decisions on real processes.
"""

from __future__ import annotations

from pathlib import Path

from hangdoctor.analysis import analyze
from hangdoctor.model import Frame, LoopState, Snapshot, Thread, Verdict

LIB = "/usr/lib/python3.12"

APP = """\
import time


def rank(words):
    score = 0
    for i, word in enumerate(words):
        score += (hash(word) ^ i) % 7
    return score


async def handler(seconds):
    words = ["a"] * 1000
    total = 0
    while time.monotonic() < seconds:
        total += rank(words)
    time.sleep(seconds)
    return total
"""

RUNNER = (
    Frame("Handle._run", f"{LIB}/asyncio/events.py", 84),
    Frame("BaseEventLoop._run_once", f"{LIB}/asyncio/base_events.py", 1936),
    Frame("BaseEventLoop.run_forever", f"{LIB}/asyncio/base_events.py", 608),
    Frame("Runner.run", f"{LIB}/asyncio/runners.py", 118),
)


def _line(needle: str) -> int:
    return next(i for i, ln in enumerate(APP.splitlines(), 1) if needle in ln)


def _app(tmp_path: Path) -> str:
    f = tmp_path / "app.py"
    f.write_text(APP)
    return str(f)


def _snap(t: float, *callback: Frame, active: bool, cwd: str | None = None) -> Snapshot:
    loop = Thread(tid=7, name="MainThread", frames=(*callback, *RUNNER), active=active)
    return Snapshot(pid=7, taken_at=t, threads=(loop,), cwd=cwd)


def test_busy_points_at_the_frame_every_sample_shares(tmp_path: Path) -> None:
    """CPU work moving between rank and handler is reported in handler, rank named as hot."""
    app = _app(tmp_path)
    in_rank = (Frame("rank", app, _line("score +=")), Frame("handler", app, _line("total +=")))
    in_handler = (Frame("handler", app, _line("while time")),)
    snaps = [
        _snap(0.0, *in_rank, active=True, cwd=str(tmp_path)),
        _snap(0.5, *in_handler, active=True, cwd=str(tmp_path)),
        _snap(1.0, *in_rank, active=True, cwd=str(tmp_path)),
    ]
    diagnosis = analyze(snaps)
    assert diagnosis.verdict is Verdict.BUSY
    (finding,) = diagnosis.findings
    assert (finding.code, finding.state) == ("HD501", LoopState.BUSY)
    assert (finding.function, finding.line) == ("handler", _line("total +="))
    assert finding.stack[finding.user_frame_index or 0].function == "handler"
    assert f"the hottest line is in rank at app.py:{_line('score +=')} (2 of 3 samples)" in (
        finding.message
    )
    assert "busy for at least 1.0 s" in finding.message


def test_busy_in_one_function_points_at_it(tmp_path: Path) -> None:
    """When every sample is inside rank, rank is the place and no separate hot spot is named."""
    app = _app(tmp_path)
    snaps = [
        _snap(
            float(i),
            Frame("rank", app, _line("score +=") - i % 2),
            Frame("handler", app, _line("total +=")),
            active=True,
        )
        for i in range(3)
    ]
    (finding,) = analyze(snaps).findings
    assert (finding.code, finding.function) == ("HD501", "rank")
    assert "hottest" not in finding.message


def test_a_last_sample_on_the_way_out_does_not_move_the_blame(tmp_path: Path) -> None:
    """Every sample in rank but the last, caught in handler as rank returned: still rank."""
    app = _app(tmp_path)
    in_rank = (Frame("rank", app, _line("score +=")), Frame("handler", app, _line("total +=")))
    returned = (Frame("handler", app, _line("total +=")),)
    snaps = [_snap(float(i), *in_rank, active=True) for i in range(3)]
    snaps.append(_snap(3.0, *returned, active=True))
    (finding,) = analyze(snaps).findings
    assert (finding.code, finding.function, finding.line) == ("HD501", "rank", _line("score +="))
    # a last sample elsewhere in the handler is work of its own: the handler is named
    snaps[-1] = _snap(3.0, Frame("handler", app, _line("while time")), active=True)
    (finding,) = analyze(snaps).findings
    assert (finding.code, finding.function) == ("HD501", "handler")


def test_blocked_message_names_the_call_as_written(tmp_path: Path) -> None:
    """The same sleeping line in every sample: blocked, HD201, the call and place in the message."""
    app = _app(tmp_path)
    sleeping = Frame("handler", app, _line("time.sleep"))
    snaps = [_snap(float(i), sleeping, active=False, cwd=str(tmp_path)) for i in range(3)]
    diagnosis = analyze(snaps)
    assert diagnosis.verdict is Verdict.BLOCKED
    (finding,) = diagnosis.findings
    assert finding.code == "HD201"
    assert finding.message == (
        f"`time.sleep()` in handler at app.py:{_line('time.sleep')} blocks the loop "
        "(stuck for at least 2.0 s)."
    )


def test_a_sync_helper_names_its_async_caller(tmp_path: Path) -> None:
    """Blocked in a sync helper: the message names the coroutine that called it, where the
    fix goes, as `scan` does from the other end."""
    (tmp_path / "geo.py").write_text("import time\n\n\ndef region_for(ip):\n    time.sleep(9)\n")
    (tmp_path / "users.py").write_text(
        "from geo import region_for\n\n\nasync def get_user(ip):\n    return region_for(ip)\n"
    )
    helper = Frame("region_for", str(tmp_path / "geo.py"), 5)
    caller = Frame("get_user", str(tmp_path / "users.py"), 5)
    snaps = [_snap(float(i), helper, caller, active=False, cwd=str(tmp_path)) for i in range(3)]
    (finding,) = analyze(snaps).findings
    assert (finding.code, finding.function, finding.line) == ("HD201", "region_for", 5)
    assert finding.message == (
        "`time.sleep()` in region_for at geo.py:5 blocks the loop; called from async get_user "
        "at users.py:5: run the call in a thread there (`await asyncio.to_thread(...)`) "
        "(stuck for at least 2.0 s)."
    )
    # blocked in the coroutine itself: nothing to add
    snaps = [_snap(float(i), caller, active=False, cwd=str(tmp_path)) for i in range(3)]
    (finding,) = analyze(snaps).findings
    assert "called from" not in finding.message


def test_a_loop_seen_idle_last_is_healthy(tmp_path: Path) -> None:
    """A callback seen once and gone by the next sample is normal work, not a hang."""
    app = _app(tmp_path)
    select = Frame("EpollSelector.select", f"{LIB}/selectors.py", 468)
    idle = Thread(tid=7, name="MainThread", frames=(select, *RUNNER[1:]), active=False)
    snaps = [
        _snap(0.0, Frame("handler", app, _line("time.sleep")), active=False),
        Snapshot(pid=7, taken_at=0.5, threads=(idle,)),
        Snapshot(pid=7, taken_at=1.0, threads=(idle,)),
    ]
    diagnosis = analyze(snaps)
    assert diagnosis.verdict is Verdict.HEALTHY and diagnosis.findings == ()


def test_different_framework_callbacks_each_sample_is_a_loaded_healthy_loop() -> None:
    """A loop under steady load sits in a different short callback every sample: healthy."""
    site = "/srv/.venv/lib/python3.12/site-packages"
    callbacks = [
        Frame("Connection._process_event", f"{site}/h11/_connection.py", 332),
        Frame("H11Protocol.data_received", f"{site}/uvicorn/protocols/http/h11_impl.py", 171),
        Frame("Request.json", f"{site}/starlette/requests.py", 252),
    ]
    snaps = [_snap(float(i) * 0.4, cb, active=True) for i, cb in enumerate(callbacks)]
    diagnosis = analyze(snaps)
    assert diagnosis.verdict is Verdict.HEALTHY
    assert diagnosis.findings == ()
    assert [lp.state for lp in diagnosis.loops] == [LoopState.IDLE]
    assert any("loaded loop" in n for n in diagnosis.notes)
