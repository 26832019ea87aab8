"""Reading real threads' scheduler counters from /proc."""

from __future__ import annotations

import os
import threading
import time

from hangdoctor.capture import schedstat


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_computing_thread_gains_cpu_time_a_sleeping_one_none() -> None:
    """Over 0.3 s the spinning thread is on a CPU or waiting for one; the sleeper is neither."""
    ids: dict[str, int] = {}
    go = threading.Event()
    done = threading.Event()  # the sleeper lives until it has been read, however slow we are

    def spinner() -> None:
        ids["spin"] = threading.get_native_id()
        go.wait(5)
        _spin(0.3)
        done.wait(10)

    def sleeper() -> None:
        ids["sleep"] = threading.get_native_id()
        go.wait(5)
        done.wait(10)

    threads = [threading.Thread(target=spinner), threading.Thread(target=sleeper)]
    for t in threads:
        t.start()
    while len(ids) < 2:
        time.sleep(0.001)
    before = {k: schedstat.read_thread(os.getpid(), tid) for k, tid in ids.items()}
    go.set()
    time.sleep(0.25)
    after = {k: schedstat.read_thread(os.getpid(), tid) for k, tid in ids.items()}
    done.set()
    for t in threads:
        t.join(5)
    spun, slept = (
        (after[k].on_cpu_s + after[k].waiting_s) - (before[k].on_cpu_s + before[k].waiting_s)  # type: ignore[union-attr]
        for k in ("spin", "sleep")
    )
    assert spun > 0.1 and slept < 0.05, (spun, slept)
    assert after["sleep"] is not None and after["sleep"].state == "S"


def test_whole_process_and_kept_open_counter() -> None:
    """Every thread of a process is read; a kept-open counter reads the same thread again."""
    me = threading.get_native_id()
    assert me in schedstat.read_process(os.getpid())
    counter = schedstat.SchedCounter.open(os.getpid(), me)
    assert counter is not None
    first = counter.read()
    _spin(0.05)
    second = counter.read()
    counter.close()
    assert first is not None and second is not None and second.on_cpu_s > first.on_cpu_s
    assert counter.read() is None  # closed


def test_unreadable_threads_are_none() -> None:
    """A thread that does not exist gives None, not an error."""
    assert schedstat.read_thread(os.getpid(), 2**22 + 12345) is None
    assert schedstat.SchedCounter.open(os.getpid(), 2**22 + 12345) is None
    assert schedstat.read_process(2**22 + 12345) == {}
