"""Worker processes for one command, shared by the scan's rounds and the fix marks.

A cold scan of a large tree parses every file in worker processes, then analyses
the files the search asks for (`engine`), then runs the fixer on each file with
findings for the `[*]` marks (`hangdoctor.fix.marks`). Inside `shared_workers`
all of these use one set of processes: they start once, and what the marks need
first (libcst, a fifth of a second to import) is done by the workers while they
would otherwise wait for the search (`warm`), not by this process after it.
Outside it, each caller starts its own processes for the one call.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["Workers", "current", "pool_context", "pool_start_method", "shared_workers"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def _single_threaded() -> bool:
    """Whether this process runs one thread, native threads included (Linux only)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def pool_context() -> multiprocessing.context.BaseContext:
    """How to start worker processes here."""
    methods = multiprocessing.get_all_start_methods()
    # fork: the workers start at once, with everything already imported (a forkserver
    # first starts an interpreter and imports the scanner again, a quarter of a second
    # before any file is parsed). Only on Linux, and only while this process has a single
    # thread: a thread's locks would stay locked in the child forever.
    if sys.platform == "linux" and "fork" in methods and _single_threaded():
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["hangdoctor.scan.engine"])
        return ctx
    return multiprocessing.get_context("spawn")


def pool_start_method() -> str:
    """How worker processes are started here (`bench/scan.py` starts its floor alike)."""
    return pool_context().get_start_method()


class Workers:
    """Up to `count` worker processes, started on first use; each runs `warm` once,
    behind the work of the first call that shares it (`map(share=True)`).

    That call is the search's first round of files asked for: the workers are idle while
    the search runs, take that round's files at once, and then warm up while this process
    searches again. Warm-ups queued behind the first parse instead ran while the search
    did, two processes on its core, and that round's files waited behind them. Without
    such a call, no warm-up is run: whatever needs one pays for it itself.
    """

    def __init__(self, count: int, warm: Callable[[], None] | None = None) -> None:
        self.count = count
        self._warm = warm
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    @property
    def started(self) -> bool:
        return self._pool is not None

    def map(
        self, fn: Callable[[_T], _R], items: Sequence[_T], *, share: bool = False
    ) -> list[_R] | None:
        """`fn` of each item, in order, in the workers; None when no worker process can be
        had (none may be started here, or they died): the caller does the work itself.

        `share`: this process takes items too, from the end of the list, while the
        workers take them from the start: the work gets done as fast when the workers
        are busy (warming up) as when they are free.
        """
        if self._broken or self.count <= 1:
            return None
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.count, mp_context=pool_context())
            futures: list[Future[_R]] = [self._pool.submit(fn, item) for item in items]
            if self._warm is not None and share:
                # queued behind this work: each worker takes one when it runs out of it
                for _ in range(self.count):
                    self._pool.submit(_warm, self._warm)
                self._warm = None
            here: dict[int, _R] = {}
            if share:
                for i in reversed(range(len(items))):
                    if not futures[i].cancel():  # a worker has it (or had it) already
                        break
                    here[i] = fn(items[i])
            return [here[i] if i in here else f.result() for i, f in enumerate(futures)]
        except (BrokenProcessPool, OSError):
            self._broken = True
            self.close()
            return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _warm(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # a warm-up only saves time: whoever needs it says why
        return


_current: Workers | None = None


def current() -> Workers | None:
    """The workers of the enclosing `shared_workers`, if any."""
    return _current


@contextmanager
def shared_workers(
    count: int | None = None, warm: Callable[[], None] | None = None
) -> Iterator[Workers]:
    """Workers that every scan round and fix mark run in this block shares (one per core
    when `count` is None; with one, everything runs in this process)."""
    global _current
    outer = _current
    workers = Workers(count if count is not None else (os.cpu_count() or 1), warm)
    _current = workers
    try:
        yield workers
    finally:
        _current = outer
        workers.close()
