"""One set of worker processes for a command: the scan's rounds and the fix marks share it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hangdoctor.fix.marks import fix_marks, warm_up
from hangdoctor.scan.workers import Workers, current, shared_workers
from tests.scan.conftest import run_scan

Write = Callable[[dict[str, str]], Path]

_PROBE = "wave"  # a standard module nothing here imports: a worker that has it was warmed


def _pid(_: int) -> int:
    return os.getpid()


def _warmed(_: int) -> bool:
    return _PROBE in sys.modules


def _warm() -> None:
    __import__(_PROBE)


def _item_pid(item: int) -> tuple[int, int]:
    return item, os.getpid()


def _nap() -> None:
    time.sleep(1.0)


def _die(_: int) -> int:
    os._exit(3)


def test_the_same_processes_serve_every_call_and_warm_up_between() -> None:
    """The warm-ups go behind the first shared call (the search's first files asked for),
    not behind the first parse: the workers are idle after that call, not during it."""
    assert _PROBE not in sys.modules
    with shared_workers(2, warm=_warm) as workers:
        assert current() is workers and not workers.started
        first = workers.map(_pid, range(8))
        assert first is not None and workers.started
        cold = workers.map(_warmed, range(4))
        second = workers.map(_item_pid, range(8), share=True)
        warmed = workers.map(_warmed, range(4))
    assert current() is None and not workers.started  # closed on the way out
    assert cold == [False] * 4
    assert second is not None
    assert {pid for _, pid in second} - {os.getpid()} <= set(first)
    assert os.getpid() not in first
    assert warmed is not None and any(warmed)
    assert _PROBE not in sys.modules  # imported there, not here


def test_this_process_takes_its_share_while_the_workers_warm_up() -> None:
    """The workers nap after their first work (a warm-up); the items handed out then
    are done in order, this process taking them from the end."""
    with shared_workers(2, warm=_nap) as workers:
        assert workers.map(_pid, range(2), share=True) is not None  # the naps go behind
        done = workers.map(_item_pid, range(12), share=True)
    assert done is not None and [item for item, _ in done] == list(range(12))
    here = [item for item, pid in done if pid == os.getpid()]
    assert here and here == list(range(12 - len(here), 12))  # a run at the end


def test_one_worker_means_this_process() -> None:
    with shared_workers(1) as workers:
        assert workers.map(_pid, range(3)) is None  # the caller does the work itself
        assert not workers.started


def test_dead_workers_are_said_once_and_not_used_again() -> None:
    workers = Workers(2)
    try:
        assert workers.map(_die, range(2)) is None
        assert workers.map(_pid, range(2)) is None and not workers.started
    finally:
        workers.close()


def test_a_scan_and_its_marks_in_shared_workers_match_their_own(write: Write) -> None:
    """Enough files for the scan to hand them out, a chain to a file analysed on demand,
    and the marks' dry runs in the same workers (libcst imported there while the search
    ran): the same findings and marks as a scan and marks that start their own."""
    files = {f"app/mod{i}.py": f"def f{i}():\n    return {i}\n" for i in range(40)}
    files["app/__init__.py"] = ""
    files["app/slow.py"] = "import time\n\n\ndef nap():\n    time.sleep(1)\n"
    files["app/routes.py"] = (
        "import time\n\nfrom app.slow import nap\n\n\nasync def a():\n    time.sleep(1)\n"
        "\n\nasync def b():\n    nap()\n"
    )
    root = write(files)
    alone = run_scan([root], root, jobs=2)
    marks_alone = fix_marks(alone, target=(3, 10))
    with shared_workers(2, warm=warm_up) as workers:
        shared = run_scan([root], root, jobs=2)
        assert workers.started  # the scan handed its files out to them
        marks_shared = fix_marks(shared, target=(3, 10))
    assert shared.findings == alone.findings and len(shared.findings) == 2
    assert marks_shared == marks_alone and marks_shared


@pytest.mark.parametrize("count", [2, 3])
def test_nested_blocks_restore_the_outer_workers(count: int) -> None:
    with shared_workers(count) as outer:
        with shared_workers(2) as inner:
            assert current() is inner
        assert current() is outer
