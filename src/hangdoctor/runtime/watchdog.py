"""The loop watchdog: notice, from inside the service, that its event loop stalled.

How it works. A heartbeat on the loop (`call_later`, every `interval`, 10 ms)
notes how late it ran: that is the loop's lag, measured by the loop itself.
A monitor thread sleeps until the next heartbeat is `threshold` overdue — the
first moment the loop can be called stalled — so it wakes about once per
threshold, not per beat, and never makes the loop wake up for it. A heartbeat
that overdue means the loop is stuck inside some callback: the monitor
captures every thread's stack with `sys._current_frames()` *while the stall is
still going on*, a few times, and reads the loop thread's scheduler counters
(waiting, or computing?). When the heartbeat finally runs, the stall is over: the
samples go through the same analysis as `hangdoctor diagnose` (same catalog
codes, same user file:line, same "waits for"), and the result is one
`StallRecord`: logged as one warning on the `hangdoctor` logger, passed to
`on_stall`, kept in a bounded buffer.

Waiting or computing is decided from the CPU the loop thread *wanted* over the
stall: time on a CPU plus time runnable but waiting for one
(`/proc/self/task/TID/schedstat`, read at each capture and when the stall
ends; never per heartbeat), against wall time (see `analysis.cpu`). With more
busy processes than cores, or at a container's CPU limit, CPU work on the loop
gets only a share of a CPU; its CPU clock alone would make it look like a
wait. A loop that wanted the CPU but hardly got it, stopped in asyncio's own
code, is starved of CPU by other load: that is logged as such, with the
figures, and not reported as a stall of the code. Where the counters cannot be
read, the thread's CPU clock decides, as before.

What the numbers mean. `duration` is how late the heartbeat ran: the stall
began between the previous heartbeat and the one that was due, up to one
`interval` before it. `detected_after` runs from that due time to the first
capture: about `threshold`.

Tasks stuck on a healthy loop (`stuck_after`, 30 s by default; None turns it
off). The loop may answer while some requests wait for ever on one another: an
await deadlock, a drained pool, a future nobody resolves. No thread stack shows
that, so a check runs *on the loop*, between callbacks, every
`min(stuck_after / 4, 5 s)` (at least 0.25 s): first a cheap pass that only
notes, per task, whether it is still parked on the same future
(`TaskTracker.waits`: no frames, no locals); then, only when some task has
newly waited longer than `stuck_after`, when `stuck_after` has passed since the
last full look (a deadlock is reported whatever its age), or while the server
shuts down, the full snapshot of every task (`snapshot_tasks`) judged by
`judge_tasks`, the analysis `hangdoctor diagnose` uses. Each episode (the same
cause, the same tasks, the same await) becomes one `StuckRecord`, once; it is
reported again only after it ended and came back. A shutdown (SIGTERM/SIGINT,
seen through the server's own handlers, which are chained, never replaced; or
the lifespan shutdown the middleware passes on) is looked at at once and at
every check while it lasts: what it waits for is HD606. Records are handed to
the monitor thread, which logs them and calls `on_stuck`, never on the loop.

C code that holds the GIL (a catastrophic regex, a C extension that never
releases it) stops every Python thread, the monitor included: nothing can be
captured during such a stall. The heartbeat still measures it exactly; the
monitor reports it when it runs again, with the stack the loop thread has at
that moment: the line that made the call if it is still there, else the
record says the line is unknown.

Standard library only: this runs inside production services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import Any

from hangdoctor.analysis import cpu as cpu_rule
from hangdoctor.analysis.classify import classify_callback
from hangdoctor.analysis.diagnose import analyze
from hangdoctor.analysis.frames import display_path, is_user_frame
from hangdoctor.analysis.loops import loop_view
from hangdoctor.analysis.source import SourceReader
from hangdoctor.analysis.tasks import DEFAULT_STUCK_AFTER_S, judge_tasks
from hangdoctor.capture import schedstat
from hangdoctor.capture.inprocess import frames_of, snapshot_of_threads, thread_cpu_seconds
from hangdoctor.catalog import get_rule
from hangdoctor.model import (
    CpuUse,
    Diagnosis,
    Finding,
    Frame,
    LoopState,
    Snapshot,
    Thread,
    ThreadCpu,
)
from hangdoctor.runtime import inflight
from hangdoctor.runtime.stall import RequestInfo, StallRecord, _remember
from hangdoctor.runtime.stuck import StuckRecord
from hangdoctor.runtime.stuck import _remember as _remember_stuck
from hangdoctor.runtime.tasks import TaskTracker

__all__ = ["LoopWatchdog", "check_period"]

logger = logging.getLogger("hangdoctor")

StallCallback = Callable[[StallRecord], object]
StuckCallback = Callable[[StuckRecord], object]
LagCallback = Callable[[float], object]

# Wake this long before a stall can be declared, and capture if the loop is stuck then:
# a stall that ends just past the threshold would otherwise end before the capture.
_EARLY = 0.005
_POLL = 0.01  # while a stall goes on: how often to look whether it ended
_LAGS_KEPT = 4096  # heartbeats measured but not yet read by the monitor
_READINGS_KEPT = (
    16  # the monitor's last wake-up readings: a stall seen late is judged from before it
)
_HOW_LONG = re.compile(r"\s*\((?:stuck|busy) for at least [\d.]+ s\)")
_LIVE: weakref.WeakSet[LoopWatchdog] = weakref.WeakSet()
_FREE_THREADED = (
    "hangdoctor: the loop watchdog does not start on a free-threaded Python with the GIL "
    "disabled, where its verdicts are untested; run the service on a default build of "
    "CPython (or with PYTHON_GIL=1) to watch it."
)


# the stuck-task check: how often it looks, and the shutdown signals it listens for
_CHECK_MIN_S = 0.25
_CHECK_MAX_S = 5.0
_SHUTDOWN_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT") if hasattr(signal, name)
)


def check_period(stuck_after: float) -> float:
    """How often the stuck-task check runs for `stuck_after`: a quarter of it, 0.25 s to 5 s."""
    return max(_CHECK_MIN_S, min(stuck_after / 4, _CHECK_MAX_S))


def _gil_disabled() -> bool:
    """Whether this interpreter runs without a GIL (a free-threaded build, 3.13+)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()


class LoopWatchdog:
    """Watch one event loop; report every stall longer than `threshold` seconds.

    Use it from inside the running loop, as `async with LoopWatchdog(0.25):` or
    with `start()` / `await aclose()` (or the non-waiting `stop()`). Each loop,
    in each thread, gets its own watchdog. `on_stall(record)` and the lag
    listeners are called on the watchdog's own thread, never on the loop.

    It also reports tasks stuck on a healthy loop, `stuck_after` seconds (30 by
    default; None: not looked for) after they stopped moving, as `StuckRecord`s
    passed to `on_stuck(record)` (on the watchdog's thread too) and kept in
    `stuck_records`.
    """

    def __init__(
        self,
        threshold: float = 0.25,
        on_stall: StallCallback | None = None,
        *,
        interval: float = 0.01,
        keep: int = 100,
        max_samples: int = 5,
        log: bool = True,
        stuck_after: float | None = DEFAULT_STUCK_AFTER_S,
        on_stuck: StuckCallback | None = None,
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be a positive number of seconds, not {threshold!r}")
        _check_stuck_after(stuck_after)
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self.threshold = float(threshold)
        # a heartbeat at least every threshold/2 keeps the detection delay near the threshold
        self.interval = min(float(interval), self.threshold / 2)
        self.max_samples = max(1, int(max_samples))
        self.records: deque[StallRecord] = deque(maxlen=max(1, int(keep)))
        self.stalls = 0
        self.cpu_starved = 0  # stalls in which the loop only waited for a CPU (not reported)
        self.last_lag: float | None = None
        self._log = log
        self._stall_listeners: list[StallCallback] = [on_stall] if on_stall else []
        self._lag_listeners: list[LagCallback] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_ident = 0
        self._loop_tid = 0
        self._loop_name: str | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set by stop(): ends the monitor's waits at once
        # (due, late, the loop thread's counters as a stall ended: read by the beat, stalls only)
        self._lags: deque[tuple[float, float, ThreadCpu | None]] = deque(maxlen=_LAGS_KEPT)
        self._early = min(_EARLY, self.threshold / 4)
        # beats later than this go to the monitor: only stalls (and the beats it woke early
        # for), unless someone wants every lag
        self._keep_above = self.threshold - self._early
        self._handled: set[float] = set()  # due times of stalls captured while they went on
        self._due = 0.0  # when the next heartbeat should run (time.monotonic())
        self._beat_handle: asyncio.TimerHandle | None = None
        self._stopped_in: float | None = None  # due time of a stall that ended in stop()
        self._counter: schedstat.SchedCounter | None = None  # the loop thread's schedstat
        self._readings: deque[_Reading] = deque(maxlen=_READINGS_KEPT)  # one per wake-up
        # tasks stuck on a healthy loop
        self.stuck_after: float | None = None if stuck_after is None else float(stuck_after)
        self.stuck_records: deque[StuckRecord] = deque(maxlen=max(1, int(keep)))
        self.stuck_count = 0
        self.task_checks = 0  # cheap passes over the tasks (TaskTracker.waits)
        self.task_looks = 0  # full looks: every task read and judged
        self.last_check_s: float | None = None  # how long the last full task check held the loop
        self.max_check_s = 0.0
        self._stuck_listeners: list[StuckCallback] = [on_stuck] if on_stuck else []
        self._outbox: deque[StuckRecord] = deque()  # made on the loop, sent by the monitor
        self._tasks: _TaskCheck | None = None

    # -- public API ---------------------------------------------------------------------

    def add_stuck_listener(self, callback: StuckCallback) -> None:
        """Also call `callback(record)` for every stuck record (on the watchdog's thread)."""
        self._stuck_listeners.append(callback)

    def set_stuck_after(self, stuck_after: float | None) -> None:
        """Change `stuck_after` (None: off) before `start()`; a running watchdog keeps its own."""
        _check_stuck_after(stuck_after)
        if self.running:
            raise RuntimeError("set stuck_after before the watchdog starts")
        self.stuck_after = None if stuck_after is None else float(stuck_after)

    def shutdown_started(self, reason: str = "shutdown") -> None:
        """The server is shutting down: look at the tasks now and at every check while it lasts.

        The look runs on the loop right after the current callback (any thread may
        call this). The middleware calls it at the lifespan shutdown; SIGTERM and
        SIGINT are seen without it. What the shutdown waits for is HD606.
        """
        check, loop = self._tasks, self._loop
        if check is not None and loop is not None and not self._stopping.is_set():
            # between callbacks, where no task runs: every await chain can be read
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing left to look at
                loop.call_soon_threadsafe(check.shutdown_started, reason)

    def check_tasks(self) -> list[StuckRecord]:
        """Look at every task now (on the loop's thread); the records of new episodes.

        The periodic check does this by itself when it is due; this runs the full
        look at once, whatever the waits.
        """
        check = self._tasks
        if check is None:
            return []
        return check.look(full=True)

    def add_stall_listener(self, callback: StallCallback) -> None:
        """Also call `callback(record)` for every stall (metrics, a JSONL writer...)."""
        self._stall_listeners.append(callback)

    def add_lag_listener(self, callback: LagCallback) -> None:
        """Call `callback(seconds)` with the loop's lag at every heartbeat (a histogram)."""
        self._lag_listeners.append(callback)
        self._keep_above = -math.inf

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> LoopWatchdog:
        """Start watching the loop of the calling thread (the running loop by default)."""
        if self.running:
            raise RuntimeError("this LoopWatchdog is already running; create one per loop")
        if _gil_disabled():
            # refuse rather than guess: its stall verdicts are not checked without a GIL
            logger.warning(_FREE_THREADED)
            return self
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "LoopWatchdog.start() must be called from inside the running event loop "
                    "(in an async function, or use `async with LoopWatchdog(...)`)."
                ) from None
        current = threading.current_thread()
        self._loop = loop
        self._loop_ident = threading.get_ident()
        self._loop_tid = threading.get_native_id()
        self._loop_name = current.name
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lags = deque(maxlen=_LAGS_KEPT)
        self._readings = deque(maxlen=_READINGS_KEPT)
        self._handled.clear()
        self._stopped_in = None
        # the first reading is taken here, on the loop thread, not by the monitor thread:
        # C code that holds the GIL right after start() would keep the monitor from its
        # first reading until the stall is over, leaving nothing from before it to judge by
        self._counter = schedstat.SchedCounter.open(os.getpid(), self._loop_tid)
        self._readings.append(self._read())
        self._due = time.monotonic() + self.interval
        self._beat_handle = loop.call_later(self.interval, self._beat)
        self._outbox.clear()
        self._tasks = None
        if self.stuck_after is not None:
            self._tasks = _TaskCheck(self, loop, self.stuck_after)
            self._tasks.start()
        self._thread = threading.Thread(
            target=self._run, name=f"hangdoctor-watchdog-{self._loop_name}", daemon=True
        )
        self._thread.start()
        _LIVE.add(self)
        return self

    def stop(self, timeout: float = 0.1) -> None:
        """Stop watching; waits at most `timeout` for the watchdog thread to end.

        The thread wakes every `interval`, so it normally ends at once; `await
        aclose()` waits for it without blocking the loop.
        """
        if self._loop is not None and threading.get_ident() == self._loop_ident:
            self._last_beat()
        self._stopping.set()
        self._wake.set()
        loop = self._loop
        check = self._tasks
        handles = [self._beat_handle, check.handle if check is not None else None]
        for handle in handles:
            if handle is None or loop is None:
                continue
            if threading.get_ident() == self._loop_ident:
                handle.cancel()
            else:
                with contextlib.suppress(RuntimeError):  # a closed loop runs nothing anyway
                    loop.call_soon_threadsafe(handle.cancel)
        if check is not None:
            check.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # bounded by `timeout` (0 from aclose()): the thread wakes at once when told to stop
            thread.join(timeout)  # hangdoctor: ignore[HD206]
        _LIVE.discard(self)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Stop watching and wait, without blocking the loop, until the thread is gone."""
        self.stop(timeout=0)
        thread = self._thread
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> LoopWatchdog:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the heartbeat (on the loop) and the monitor thread ---------------------------------

    def _beat(self) -> None:
        """On the loop, every `interval`: how late it ran is the loop's lag."""
        now = time.monotonic()
        late = now - self._due
        self.last_lag = late
        if late > self._keep_above:  # for the monitor: stalls, and every lag for listeners
            counter = self._counter
            # a stall just ended: its end is what judges one the monitor could not watch
            end = counter.read() if late > self.threshold and counter is not None else None
            self._lags.append((self._due, late, end))
        if self._stopping.is_set() or self._loop is None:
            return
        self._due = now + self.interval
        self._beat_handle = self._loop.call_later(self.interval, self._beat)

    def _last_beat(self) -> None:
        """Stopped on the loop: the pending beat's lag is measured now, as the beat would.

        The loop runs this code, so a stall it was in is over. Without this, a stall
        that ends in the call that stops the watchdog (C code holding the GIL to the
        end of a test) would be lost: its beat is cancelled before it can run, and the
        monitor, let in only once the GIL is free, sees `_stopping` first.
        """
        due = self._due
        late = time.monotonic() - due
        if late > self.threshold and self._beat_handle is not None:
            counter = self._counter
            self._lags.append((due, late, counter.read() if counter is not None else None))
            self._stopped_in = due

    def _read(self, *, full: bool = False) -> _Reading:
        """The loop thread's CPU now: on a CPU, and waiting for one.

        On each wake-up the kept-open schedstat file is read (one `pread`, about
        the cost of the CPU clock it replaces); at a capture the thread's state
        letter is read too (`full`), which the analysis needs to see a wait still
        going on. Without /proc, the loop thread's CPU clock is read instead.
        """
        loop: ThreadCpu | None = None
        if full:
            loop = schedstat.read_thread(os.getpid(), self._loop_tid)
        elif self._counter is not None:
            loop = self._counter.read()
        clock = thread_cpu_seconds(self._loop_ident) if loop is None else None
        return _Reading(time.monotonic(), clock, loop)

    def _run(self) -> None:
        """Sleep until a stall could first be declared; capture it, or report what was missed.

        The loop's heartbeat is due at `_due`; only when it is `threshold` overdue is
        the loop stalled, so this thread wakes about once per threshold, not per beat.
        It looks a few milliseconds early and captures the stack if the beat is still
        pending then; the capture becomes a record only if the beat ends up later
        than the threshold.
        """
        loop = self._loop
        assert loop is not None
        counter = self._counter
        try:
            self._watch(loop)
        finally:
            self._counter = None
            if counter is not None:
                counter.close()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        last = self._readings[-1]  # taken by start()
        while True:
            deadline = self._due + self.threshold - self._early
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            # Overdue on waking: C code may have held the GIL until a moment ago. The loop
            # thread's stack is read before anything that releases the GIL (reading /proc
            # does), or the loop thread takes it back and leaves the line that made the call.
            peek = None
            if time.monotonic() - self._due > self.threshold - self._early:
                peek = frames_of(sys._current_frames().get(self._loop_ident))
            now = self._read()
            self._drain(last, now)
            self._send_stuck()
            if self._stopping.is_set():
                # a stall that ended in stop(), or just before it, unseen
                self._drain(last, self._read(), peek=peek, stopping=True)
                return
            due = self._due
            overdue = now.at - due > self.threshold - self._early
            if overdue and due not in self._handled and loop.is_running():
                # Woken far too late, so this thread could not run. C code that held the
                # GIL (the stack is what it left) kept the loop thread on the CPU meanwhile;
                # if that thread hardly ran, this one waited for a CPU, not for the GIL.
                late_by = now.at - deadline
                then = self._reading_before(due) or last  # from before the stall began
                frozen = late_by > self.threshold / 2 and _loop_ran(then, now)
                self._watch_stall(due, then, held_gil=frozen, peek=peek if frozen else None)
                now = self._read()
            last = now
            self._readings.append(now)

    def _drain(
        self,
        last: _Reading,
        now: _Reading,
        *,
        peek: tuple[Frame, ...] | None = None,
        stopping: bool = False,
    ) -> None:
        """Pass the measured lags on; report a stall that ended unseen.

        A heartbeat that ran more than `threshold` late, when this thread never saw
        it overdue, means this thread could not run either: C code held the GIL,
        or the process was stopped, or this thread waited for a CPU all that time
        (then the loop did too: a process starved of CPU, not a cause in its code).

        When the watchdog is `stopping`, the loop has gone on past `stop()`: its stack
        now is `stop()`'s caller's (or asyncio.run's), never a stall's. A stall that
        ended in `stop()` is shown with `peek` (the stack read the moment this thread
        got the GIL back) when there is one; any other, and one without `peek`, with
        its line unknown.
        """
        while self._lags:
            due, late, end = self._lags.popleft()
            self._notify_lag(max(0.0, late))
            if late <= self.threshold:
                continue
            if due in self._handled:
                self._handled.discard(due)
                continue
            # judged from before it began to when it ended (read by the beat): this thread
            # may have waited long, for the GIL or a CPU, before it could look
            if due + late > now.at:
                now = self._read()
            then = self._reading_before(due) or last
            use = cpu_rule.use_between(then.loop, end or now.loop)
            if use is not None and cpu_rule.held_back(use):
                self._report_starved(late, use)
                continue
            if not _on_cpu(then, now):
                continue  # the loop thread was not on the CPU: the process was stopped
            snap, _ = self._capture(then)
            if stopping:
                seen = peek if due == self._stopped_in and peek else ()
                snap = _with_loop_thread(snap, self._loop_ident, frames=seen)
            record = self._record([snap], late, _wall(due), now.at - due, None, None)
            if record is not None:
                self._report(_held_gil_record(record))

    def _reading_before(self, moment: float) -> _Reading | None:
        """The last wake-up reading taken before `moment` (else the oldest one kept)."""
        before = [r for r in self._readings if r.at <= moment]
        if before:
            return before[-1]
        return self._readings[0] if self._readings else None

    def _capture(self, then: _Reading) -> tuple[Snapshot, _Reading]:
        """Every thread's stack now; the loop thread marked busy or not since `then`.

        Busy is the CPU the loop thread wanted since `then` (on a CPU plus waiting
        for one); its counters go with the sample for the analysis.
        """
        now = self._read(full=True)
        busy = _on_cpu(then, now)
        active = None if busy is None else {self._loop_ident: busy}
        snap = snapshot_of_threads(exclude=frozenset({threading.get_ident()}), active=active)
        if now.loop is not None:
            snap = _with_loop_thread(snap, self._loop_ident, cpu=now.loop)
        return snap, now

    def _watch_stall(
        self,
        due: float,
        last: _Reading,
        *,
        held_gil: bool = False,
        peek: tuple[Frame, ...] | None = None,
    ) -> None:
        """Capture the stacks while the stall goes on; report it when the loop runs again.

        `peek` is the loop thread's stack read the moment this thread got the GIL back
        (see `_watch`): the first sample shows it, not where the loop went on to since.
        """
        loop = self._loop
        assert loop is not None
        detected = time.monotonic()
        self._handled.add(due)
        snap, seen = self._capture(last)
        if peek:
            snap = _with_loop_thread(snap, self._loop_ident, frames=peek)
        samples = [snap]
        req = inflight.find_request(sys._current_frames().get(self._loop_ident))
        request = None if req is None else req.info(detected)
        in_flight = inflight.in_flight(loop, req)
        # with OpenTelemetry: the request's span stays open until this stall is reported
        hold = None if req is None else req.hold_span()
        del req  # not kept past the stall
        try:
            self._follow_stall(due, last, detected, samples, seen, request, in_flight, held_gil)
        finally:
            if hold is not None:
                hold.set_result(None)

    def _follow_stall(
        self,
        due: float,
        last: _Reading,
        detected: float,
        samples: list[Snapshot],
        seen: _Reading,
        request: RequestInfo | None,
        in_flight: int | None,
        held_gil: bool,
    ) -> None:
        """Sample the stall until it ends, then report it (unless it ended within the threshold)."""
        gap = max(self.threshold / 2, 0.05)  # spread the samples over the stall
        while self._due == due and not self._stopping.is_set():
            if self._wake.wait(min(gap, _POLL)):
                break
            if len(samples) < self.max_samples and time.monotonic() - seen.at >= gap:
                snap, seen = self._capture(seen)
                samples.append(snap)
        ran = next(((lt, e) for d, lt, e in list(self._lags) if d == due), None)
        late, end = ran if ran is not None else (None, None)
        if late is None and self._due != due:
            late = 0.0  # it ran, too early to be kept: within the threshold
        if late is None:  # stopped (stop() runs on the loop: the stall is over) or still going
            late = time.monotonic() - due
        if late <= self.threshold:  # caught early, and the loop ran again in time: no stall
            self._handled.discard(due)
            return
        use = cpu_rule.use_between(last.loop, end or self._read(full=True).loop)
        record = self._record(
            samples, late, _wall(due), detected - due, request, in_flight, use=use
        )
        if record is not None:
            self._report(_held_gil_record(record) if held_gil else record)

    def _record(
        self,
        samples: list[Snapshot],
        duration: float,
        started_wall: float,
        detected_after: float,
        request: RequestInfo | None,
        in_flight: int | None,
        *,
        use: CpuUse | None = None,
    ) -> StallRecord | None:
        """The stall as a record; None when the loop was only starved of CPU (logged instead)."""
        if _in_own_check(samples, self._loop_ident):
            return None  # the task check held the loop: it measures and logs that itself
        samples = _until_it_ran(samples, self._loop_ident)
        diagnosis = analyze(samples)
        finding = next((f for f in diagnosis.findings if f.tid == self._loop_tid), None)
        if use is not None and self._only_starved(diagnosis, finding, samples[-1], use):
            self._report_starved(duration, use)
            return None
        notes: list[str] = []
        if finding is None and _loop_idle(samples[-1], self._loop_ident):
            # read only once the loop ran again (this thread was preempted through the whole
            # stall): the stack is the idle loop's, and asyncio.run's caller is no cause
            finding = _unseen_finding(use)
            notes.append("The stall ended before its stack could be captured.")
        elif finding is None:
            finding = self._fallback_finding(samples[-1])
            if finding.code == "HD900" and finding.function == "?":
                notes.append("The stall ended before its stack could be captured.")
        rule = get_rule(finding.code)
        state = finding.state or LoopState.BLOCKED
        return StallRecord(
            code=finding.code,
            name=rule.name,
            message=_HOW_LONG.sub("", finding.message),
            file=finding.file,
            line=finding.line,
            function=finding.function,
            duration=round(duration, 4),
            started_at=round(started_wall, 4),
            detected_after=round(detected_after, 4),
            pid=os.getpid(),
            thread=self._loop_name,
            tid=self._loop_tid,
            state=state.value,
            samples=len(samples),
            source=finding.source,
            stack=finding.stack,
            waits_for=finding.waits_for,
            request=request,
            in_flight=in_flight,
            notes=tuple(notes),
        )

    def _only_starved(
        self, diagnosis: Diagnosis, finding: Finding | None, last: Snapshot, use: CpuUse
    ) -> bool:
        """The loop wanted the CPU all along but hardly got it, and no code of the user's held it.

        Then the stall is the machine's (other processes, a CPU limit), not a
        cause in the code: naming asyncio's own frames as CPU work, or the line
        the thread was preempted on as a wait, would be a wrong cause.
        """
        if cpu_rule.held_back(use):
            return True  # it ran a few percent of the stall: whatever it ran did not hold it up
        if not cpu_rule.starved(use):
            return False
        report = next((lp for lp in diagnosis.loops if lp.tid == self._loop_tid), None)
        if report is not None and report.state is LoopState.IDLE:
            return True  # the analysis found the stack says nothing (see analysis.diagnose)
        if finding is not None:
            return finding.code == "HD501" and finding.user_frame_index is None
        thread = next((t for t in last.threads if t.ident == self._loop_ident), None)
        return thread is None or not any(is_user_frame(f) for f in thread.frames)

    def _report_starved(self, duration: float, use: CpuUse | None) -> None:
        """A stall of the machine, not of the code: counted, and logged with the figures."""
        self.cpu_starved += 1
        if self._log:
            how = "it" + (f" {cpu_rule.describe_starved(use)}" if use else " waited for a CPU")
            logger.warning(
                "event loop starved of CPU %.3f s: %s; other processes or the CPU limit take "
                "the CPU, no code on the loop held it up",
                duration,
                how,
            )

    def _fallback_finding(self, snap: Snapshot) -> Finding:
        """The loop's stack had no recognisable loop frames (a custom runner): classify it whole."""
        thread = next((t for t in snap.threads if t.ident == self._loop_ident), None)
        frames: tuple[Frame, ...] = thread.frames if thread is not None else ()
        reader = SourceReader(cwd=snap.cwd)
        on_cpu = bool(thread is not None and thread.active)
        if not frames:
            rule = get_rule("HD900")
            return Finding(
                code=rule.code, message="The loop stalled.", file="?", line=0, function="?"
            )
        cls = classify_callback(frames, reader, on_cpu=on_cpu)
        frame = frames[cls.user_index] if cls.user_index is not None else frames[0]
        where = f"{display_path(frame.file, snap.cwd)}:{frame.line}"
        called = cls.evidence or "The code"
        source = reader.line(frame.file, frame.line)
        return Finding(
            code=cls.rule.code,
            message=f"{called} in {frame.function} at {where} stalled the loop.",
            file=frame.file,
            line=frame.line,
            function=frame.function,
            state=LoopState.BUSY if cls.rule.code == "HD501" else LoopState.BLOCKED,
            source=source.strip() if source else None,
            stack=frames,
            user_frame_index=cls.user_index,
        )

    def _report(self, record: StallRecord) -> None:
        self.stalls += 1
        self.records.append(record)
        _remember(record)
        if self._log:
            logger.warning(record.summary(), extra={"hangdoctor_stall": record.to_dict()})
        for callback in list(self._stall_listeners):
            try:
                callback(record)
            except Exception:  # a broken callback must not kill the watchdog
                logger.exception("hangdoctor: a stall listener raised")

    def _report_stuck(self, record: StuckRecord) -> None:
        """On the loop: keep the record; the monitor thread logs it and calls the listeners."""
        self.stuck_count += 1
        self.stuck_records.append(record)
        _remember_stuck(record)
        self._outbox.append(record)

    def _send_stuck(self) -> None:
        """On the monitor thread: log the stuck records the loop made and call the listeners."""
        while self._outbox:
            record = self._outbox.popleft()
            if self._log:
                logger.warning(record.summary(), extra={"hangdoctor_stuck": record.to_dict()})
            for callback in list(self._stuck_listeners):
                try:
                    callback(record)
                except Exception:  # a broken callback must not kill the watchdog
                    logger.exception("hangdoctor: a stuck listener raised")

    def _signalled(self, signum: int) -> None:
        """In a signal handler (see `_SignalChain`): only hand the news to the loop."""
        loop, check = self._loop, self._tasks
        if loop is None or check is None or self._stopping.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to look at
            loop.call_soon_threadsafe(check.shutdown_started, _signal_name(signum))

    def _notify_lag(self, lag: float) -> None:
        for callback in self._lag_listeners:
            try:
                callback(lag)
            except Exception:
                logger.exception("hangdoctor: a lag listener raised")
                self._lag_listeners.remove(callback)
                break


def _check_stuck_after(stuck_after: float | None) -> None:
    if stuck_after is not None and not (0 < stuck_after < math.inf):
        raise ValueError(
            f"stuck_after must be a positive number of seconds, or None to turn it off, "
            f"not {stuck_after!r}"
        )


@dataclass
class _Episode:
    """A stuck episode already reported: it is over when its waiting tasks move or end."""

    # task id -> since when it waits (time.monotonic()); empty: only a look can end it
    waiting: dict[int, float]


class _TaskCheck:
    """The stuck-task check of one watchdog on one loop: runs on the loop, between callbacks."""

    def __init__(self, dog: LoopWatchdog, loop: asyncio.AbstractEventLoop, stuck_after: float):
        self.dog = dog
        self.loop = loop
        self.stuck_after = stuck_after
        self.period = check_period(stuck_after)
        self.tracker = TaskTracker()
        self.handle: asyncio.TimerHandle | None = None
        self.episodes: dict[Hashable, _Episode] = {}
        self.judged: dict[int, float] = {}  # long waits already looked at: task id -> since
        self.last_look = time.monotonic()
        self.shutdown_since: float | None = None
        self.shutdown_reason: str | None = None
        self.failed = False
        self.stopped = False
        # a wait that restarted moves its `since` by far more than this; the same wait
        # measured twice by no more than the time a pass takes
        self.tolerance = min(0.1, stuck_after / 4)

    def start(self) -> None:
        self._chain_signals()
        self.handle = self.loop.call_later(self.period, self._tick)

    def stop(self) -> None:
        self.stopped = True
        if threading.current_thread() is threading.main_thread():
            for sig in _SHUTDOWN_SIGNALS:
                current = signal.getsignal(sig)
                if isinstance(current, _SignalChain) and current.dog() is self.dog:
                    with contextlib.suppress(ValueError, OSError):
                        signal.signal(sig, current.previous)

    def shutdown_started(self, reason: str) -> None:
        if self.stopped:
            return
        if self.shutdown_since is None:
            self.shutdown_since = time.monotonic()
            self.shutdown_reason = reason
        self.look(full=True)

    def _tick(self) -> None:
        """The periodic callback on the loop: look, then come back in one period."""
        if self.stopped or self.dog._stopping.is_set():
            return
        try:
            self._chain_signals()
            self.look()
        finally:
            if not self.stopped:
                self.handle = self.loop.call_later(self.period, self._tick)

    def look(self, *, full: bool = False) -> list[StuckRecord]:
        """The cheap pass; the full look when it is due (or `full`). Never raises."""
        try:
            return self._look_at_tasks(full)
        except Exception:  # a bug here must never take the server down, nor spam its log
            if not self.failed:
                self.failed = True
                logger.exception("hangdoctor: the stuck-task check failed; it goes on")
            return []

    def _look_at_tasks(self, full: bool) -> list[StuckRecord]:
        waits = self.tracker.waits(self.loop)
        self.dog.task_checks += 1
        now = time.monotonic()
        since = {tid: now - w for tid, w in waits.items()}
        self._end_moved(since)
        long = [tid for tid, w in waits.items() if w >= self.stuck_after]
        fresh = any(
            abs(self.judged.get(tid, -math.inf) - since[tid]) > self.tolerance for tid in long
        )
        due = now - self.last_look >= self.stuck_after
        if not (full or fresh or due or self.shutdown_since is not None):
            return []
        self.judged = {tid: since[tid] for tid in long}
        self.last_look = now
        return self._judge(waits, since)

    def _end_moved(self, since: dict[int, float]) -> None:
        """Episodes whose waiting tasks moved on (or ended) are over."""
        for key, episode in list(self.episodes.items()):
            for tid, was in episode.waiting.items():
                now = since.get(tid)
                if now is None or abs(now - was) > self.tolerance:
                    del self.episodes[key]
                    break

    def _judge(self, waits: dict[int, float], since: dict[int, float]) -> list[StuckRecord]:
        dog = self.dog
        dog.task_looks += 1
        started = time.perf_counter()
        tasks = self.tracker.look(self.loop, waits)
        cwd = _cwd()
        pid = os.getpid()
        snap = Snapshot(
            pid=pid,
            taken_at=time.time(),
            threads=(),
            source="watchdog",
            python_version=sys.version.split()[0],
            cwd=cwd,
            tasks=tasks,
            tasks_source="runtime",
        )
        judgement = judge_tasks(
            pid,
            [snap],
            SourceReader(cwd=cwd),
            stuck_after=self.stuck_after,
            loop_thread=dog._loop_name,
            loop_tid=dog._loop_tid,
        )
        held = time.perf_counter() - started
        dog.last_check_s = held
        dog.max_check_s = max(dog.max_check_s, held)
        if held > dog.threshold and dog._log:
            logger.warning(
                "hangdoctor: the stuck-task check held the event loop %.3f s (%d tasks)",
                held,
                len(tasks),
            )
        findings = [f for f in judgement.findings if _actionable(f)]
        others = [f for f in findings if f.code != "HD606"]
        found: dict[Hashable, Finding] = {}
        for finding in findings:
            if finding.code == "HD606" and not self._worth_reporting(finding, others):
                continue
            found.setdefault(_episode_key(finding), finding)
        for key in list(self.episodes):
            if key not in found:
                del self.episodes[key]  # it ended
        made: list[StuckRecord] = []
        for key, finding in found.items():
            if key in self.episodes:
                continue
            self.episodes[key] = _Episode(
                {t: since[t] for t in _waiting_tasks(finding) if t in since}
            )
            notes: list[str] = []
            if finding.code == "HD606":
                if self.shutdown_reason:
                    notes.append(f"The shutdown began with {self.shutdown_reason}.")
                notes.extend(_still_stuck(f) for f in others)
            if finding.code == "HD606" and self.shutdown_since is not None:
                # how long the shutdown has waited: its own await moves every few ms
                lasted = time.monotonic() - self.shutdown_since
                finding = replace(finding, waiting_s=round(lasted, 3))
            record = StuckRecord.from_finding(
                finding, pid=pid, thread=dog._loop_name, tid=dog._loop_tid, notes=tuple(notes)
            )
            made.append(record)
            dog._report_stuck(record)
        return made

    def _worth_reporting(self, finding: Finding, others: list[Finding]) -> bool:
        """A shutdown is news when it waits for something named, or has lasted `stuck_after`.

        Every graceful shutdown waits a moment (uvicorn sleeps 0.1 s first); one
        with nothing left to wait for is not stuck until it has gone on that long.
        Tasks stuck for another cause (a deadlock) are what it waits for too.
        """
        if finding.holders or others:
            return True
        began = self.shutdown_since
        return began is not None and time.monotonic() - began >= self.stuck_after

    def _chain_signals(self) -> None:
        """Hear SIGTERM/SIGINT through the server's own Python handlers (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SHUTDOWN_SIGNALS:
            try:
                current = signal.getsignal(sig)
                if isinstance(current, _SignalChain):
                    if current.dog() is not self.dog:
                        current.dog = weakref.ref(self.dog)  # a watchdog before this one's
                elif callable(current):  # not SIG_DFL/SIG_IGN, not a handler set from C
                    signal.signal(sig, _SignalChain(current, self.dog))
            except (ValueError, OSError):  # not allowed here: the lifespan still tells us
                return


class _SignalChain:
    """Stands in for a server's own signal handler: tells the watchdog, then calls that handler.

    It only schedules a look on the loop (`call_soon_threadsafe`: no lock, safe in a
    handler that may run in the middle of the loop's own code) and never changes what
    the server's handler does, exceptions (KeyboardInterrupt) included.
    """

    def __init__(self, previous: Callable[[int, FrameType | None], Any], dog: LoopWatchdog):
        self.previous = previous
        self.dog = weakref.ref(dog)

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        dog = self.dog()
        if dog is not None:
            with contextlib.suppress(Exception):
                dog._signalled(signum)
        return self.previous(signum, frame)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _actionable(finding: Finding) -> bool:
    """Leave out waits that are the server's own protocol, with no line of the user's to fix.

    A lost wakeup (HD603) whose task runs no code of the user's is a server or a
    library waiting for its own next message: uvicorn's lifespan task waits on a
    queue for the shutdown message the whole time the server runs.
    """
    return finding.code != "HD603" or any(is_user_frame(f) for f in finding.stack)


def _still_stuck(finding: Finding) -> str:
    """A note for HD606: the tasks of another stuck episode, which the shutdown waits for too."""
    rule_name = get_rule(finding.code).name
    tasks = [t for t in (finding.cycle or (finding.task,)) if t]
    which = f" (task{'s' if len(tasks) > 1 else ''} {', '.join(tasks)})" if tasks else ""
    return (
        f"Still stuck, so the shutdown waits for it too: {finding.code} {rule_name} at "
        f"{finding.file}:{finding.line}{which}."
    )


def _waiting_tasks(finding: Finding) -> list[int]:
    """The tasks whose waits make the episode: the cycle's, else the waiting task (not HD606)."""
    if finding.code in ("HD605", "HD606") or finding.task_id is None:
        # the shutdown's own await moves while it waits, and so does a stream that sends
        # on after its client left: only a look ends those
        return []
    ids = [finding.task_id]
    if finding.cycle:
        ids += [h.task_id for h in finding.holders if h.task_id is not None]
    return ids


def _episode_key(finding: Finding) -> Hashable:
    """One stuck episode: the cause, the tasks involved, what they wait on."""
    waits = finding.waits_on.key if finding.waits_on is not None else None
    if finding.code == "HD606":  # one shutdown: what it waits for shrinks as requests end
        return (finding.code, finding.task_id, waits)
    if finding.code == "HD605":  # one response, wherever its stream is at each look
        return (finding.code, finding.task_id)
    if finding.cycle:  # the same cycle whichever of its tasks the analysis names first
        members = {(finding.task_id, waits)}
        members.update((h.task_id, h.waits_on.key if h.waits_on else None) for h in finding.holders)
        return (finding.code, frozenset(members))
    tasks = frozenset({finding.task_id, *(h.task_id for h in finding.holders)})
    return (finding.code, tasks, waits, finding.file, finding.line)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed
        return None


def _in_own_check(samples: list[Snapshot], ident: int) -> bool:
    """The loop was inside the watchdog's own task check (its cost is measured and logged)."""
    name = _TaskCheck._look_at_tasks.__name__
    for snap in samples:
        thread = _loop_thread(snap, ident)
        if thread is not None and any(
            f.file == __file__ and f.function.rsplit(".", 1)[-1] == name for f in thread.frames
        ):
            return True
    return False


@dataclass(frozen=True)
class _Reading:
    """What the monitor read of the loop thread at one moment."""

    at: float  # time.monotonic()
    clock: float | None  # its CPU clock: only where its counters are unreadable
    loop: ThreadCpu | None  # its scheduler counters


def _on_cpu(then: _Reading, now: _Reading) -> bool | None:
    """Whether the loop thread wanted the CPU for most of `then`..`now`; None if unknown.

    From its scheduler counters (on a CPU plus waiting for one); where those are
    unreadable, from its CPU clock, which counts only the CPU it got.
    """
    use = cpu_rule.use_between(then.loop, now.loop)
    if use is not None:
        return cpu_rule.cpu_bound(use)
    if then.clock is None or now.clock is None or now.at <= then.at:
        return None
    return (now.clock - then.clock) / (now.at - then.at) >= cpu_rule.CPU_BOUND


def _loop_ran(then: _Reading, now: _Reading) -> bool:
    """The loop thread was on a CPU for more than a few percent of `then`..`now`.

    C code that holds the GIL runs on the loop thread: where it hardly ran, the
    monitor was late because it waited for a CPU (or the process was stopped).
    Unknown (no counters): True, as before.
    """
    use = cpu_rule.use_between(then.loop, now.loop)
    return use is None or use.on_cpu_s >= cpu_rule.RAN_LITTLE * use.wall_s


def _loop_thread(snap: Snapshot, ident: int) -> Thread | None:
    return next((t for t in snap.threads if t.ident == ident), None)


def _loop_idle(snap: Snapshot, ident: int) -> bool:
    """The loop thread of `snap` waits in its selector (False when no loop frame is known)."""
    thread = _loop_thread(snap, ident)
    view = None if thread is None else loop_view(thread)
    return view is not None and view.idle


def _unseen_finding(use: CpuUse | None) -> Finding:
    """A stall none of whose samples shows it: its length is known, its line is not.

    CPU work if the loop thread wanted the CPU through it (HD501), else unknown (HD900).
    """
    busy = use is not None and cpu_rule.cpu_bound(use)
    rule = get_rule("HD501" if busy else "HD900")
    what = "CPU work" if busy else "Something"
    return Finding(
        code=rule.code,
        message=f"{what} stalled the loop; it ran again before its stack could be read.",
        file="?",
        line=0,
        function="?",
        state=LoopState.BUSY if busy else LoopState.BLOCKED,
    )


def _with_loop_thread(snap: Snapshot, ident: int, **changes: Any) -> Snapshot:
    threads = tuple(replace(t, **changes) if t.ident == ident else t for t in snap.threads)
    return replace(snap, threads=threads)


def _wall(moment: float) -> float:
    """`time.time()` of a past `time.monotonic()` moment."""
    return time.time() - (time.monotonic() - moment)


def _until_it_ran(samples: list[Snapshot], loop_ident: int) -> list[Snapshot]:
    """The samples without those taken after the loop went back to waiting for events.

    A sample taken as the stall ended (the monitor thread preempted between seeing the
    beat missing and reading the stacks) shows the loop in its selector: it is not the
    stall, and as the last sample it would make the loop look idle and the cause unknown.
    """
    kept = list(samples)
    while len(kept) > 1 and _loop_idle(kept[-1], loop_ident):
        kept.pop()
    return kept


def _held_gil_record(record: StallRecord) -> StallRecord:
    """A stall this thread could not watch: C code held the GIL from start to end.

    The stack was read the moment the GIL was let go. Still inside the user's
    callback, it names the line that made the call; already past it (the loop
    thread may run a little further before it yields), the place is unknown and
    the record says so instead of naming asyncio's own machinery.
    """
    note = (
        "C code held the GIL for the whole stall, so nothing could look while it lasted; "
        "the duration is exact, the stack is the one seen the moment the call returned."
    )
    view = loop_view(Thread(tid=record.tid, name=record.thread, frames=record.stack))
    callback = record.stack if view is None else view.callback
    if any(is_user_frame(f) for f in callback):
        return replace(
            record, code="HD501", name=get_rule("HD501").name, notes=(*record.notes, note)
        )
    moved = "The loop had moved on to its next callback by then: the line is unknown."
    return replace(
        record,
        code="HD501",
        name=get_rule("HD501").name,
        message="C code that holds the GIL (a regex, a C extension) stalled the loop.",
        file="?",
        line=0,
        function="?",
        source=None,
        notes=(*record.notes, note, moved),
    )


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: mark every watchdog stopped.

    asyncio does not carry a running loop across fork either, so the child
    starts its own loop (a gunicorn worker after `--preload`) and starts the
    watchdog there: `start()` works again on the same object.
    """
    for dog in list(_LIVE):
        dog._thread = None
        dog._stopping = threading.Event()
        dog._wake = threading.Event()
        dog._beat_handle = None
        dog._loop = None
        dog._tasks = None
        dog._outbox.clear()
    _LIVE.clear()


def _register_fork_handler() -> None:
    register: Any = getattr(os, "register_at_fork", None)
    if register is not None:
        register(after_in_child=_after_fork_in_child)


_register_fork_handler()
