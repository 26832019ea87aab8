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
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from hangdoctor.analysis import cpu as cpu_rule
from hangdoctor.analysis.classify import classify_callback
from hangdoctor.analysis.diagnose import analyze
from hangdoctor.analysis.frames import display_path, is_user_frame
from hangdoctor.analysis.loops import loop_view
from hangdoctor.analysis.source import SourceReader
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

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("hangdoctor")

StallCallback = Callable[[StallRecord], object]
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
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be a positive number of seconds, not {threshold!r}")
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
        self._counter: schedstat.SchedCounter | None = None  # the loop thread's schedstat
        self._readings: deque[_Reading] = deque(maxlen=_READINGS_KEPT)  # one per wake-up

    # -- public API ---------------------------------------------------------------------

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
        # the first reading is taken here, on the loop thread, not by the monitor thread:
        # C code that holds the GIL right after start() would keep the monitor from its
        # first reading until the stall is over, leaving nothing from before it to judge by
        self._counter = schedstat.SchedCounter.open(os.getpid(), self._loop_tid)
        self._readings.append(self._read())
        self._due = time.monotonic() + self.interval
        self._beat_handle = loop.call_later(self.interval, self._beat)
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
        self._stopping.set()
        self._wake.set()
        handle, loop = self._beat_handle, self._loop
        if handle is not None and loop is not None:
            if threading.get_ident() == self._loop_ident:
                handle.cancel()
            else:
                with contextlib.suppress(RuntimeError):  # a closed loop runs nothing anyway
                    loop.call_soon_threadsafe(handle.cancel)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
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
            if self._stopping.is_set():
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

    def _drain(self, last: _Reading, now: _Reading) -> None:
        """Pass the measured lags on; report a stall that ended unseen.

        A heartbeat that ran more than `threshold` late, when this thread never saw
        it overdue, means this thread could not run either: C code held the GIL,
        or the process was stopped, or this thread waited for a CPU all that time
        (then the loop did too: a process starved of CPU, not a cause in its code).
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
        del req  # not kept past the stall
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
        diagnosis = analyze(samples)
        finding = next((f for f in diagnosis.findings if f.tid == self._loop_tid), None)
        if use is not None and self._only_starved(diagnosis, finding, samples[-1], use):
            self._report_starved(duration, use)
            return None
        notes: list[str] = []
        if finding is None:
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

    def _notify_lag(self, lag: float) -> None:
        for callback in self._lag_listeners:
            try:
                callback(lag)
            except Exception:
                logger.exception("hangdoctor: a lag listener raised")
                self._lag_listeners.remove(callback)
                break


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


def _with_loop_thread(snap: Snapshot, ident: int, **changes: Any) -> Snapshot:
    threads = tuple(replace(t, **changes) if t.ident == ident else t for t in snap.threads)
    return replace(snap, threads=threads)


def _wall(moment: float) -> float:
    """`time.time()` of a past `time.monotonic()` moment."""
    return time.time() - (time.monotonic() - moment)


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
    _LIVE.clear()


def _register_fork_handler() -> None:
    register: Any = getattr(os, "register_at_fork", None)
    if register is not None:
        register(after_in_child=_after_fork_in_child)


_register_fork_handler()
