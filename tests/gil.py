"""A C call that holds the GIL for a chosen time on this machine: a backtracking regex.

`(a+)+$` against `"a" * n + "b"` takes time doubling with each `a`, all inside one
`re.match` call that never releases the GIL. A fixed `n` took 0.7 s on one machine and
0.24 s on a faster one, where a 0.1 s watchdog then missed it now and then; the length is
therefore measured here, in CPU time, until the call takes at least the time a test needs.
"""

from __future__ import annotations

import re
import time

PATTERN = r"(a+)+$"
_COMPILED = re.compile(PATTERN)


def _time_of(n: int) -> float:
    # CPU time, not wall time: a calibration descheduled by other load would read long,
    # pick too short a subject, and the test's call would then end under its threshold
    # (seen once in CI on 3.13: the stall was never there to catch)
    subject = "a" * n + "b"
    started = time.thread_time()
    _COMPILED.match(subject)
    return time.thread_time() - started


def backtracking_length(at_least: float, *, longest: int = 34) -> tuple[int, float]:
    """The number of `a`s for which the match takes `at_least` seconds here, and its time."""
    n = 18
    while True:
        took = _time_of(n)
        if took >= at_least or n >= longest:
            return n, took
        # each `a` doubles the time: jump close to the target, then step
        n += 1 if took * 4 >= at_least else 2
