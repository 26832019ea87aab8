"""The loop watchdog: notice, from inside the service, that its event loop stalled.

How it works. A monitor thread posts a heartbeat to the loop
(`call_soon_threadsafe`) every `interval` and waits for the loop to run it.
A healthy loop answers in microseconds, even an idle one (the post wakes its
selector). When no answer comes within `threshold`, the loop is stuck inside
some callback: the monitor captures every thread's stack with
`sys._current_frames()` *while the stall is still going on*, a few times, and
measures whether the loop thread burns CPU (its per-thread CPU clock). When the
heartbeat finally runs, the stall is over: the samples go through the same
analysis as `hangdoctor diagnose` (same catalog codes, same user file:line,
same "waits for"), and the result is one `StallRecord`: logged as one warning
on the `hangdoctor` logger, passed to `on_stall`, kept in a bounded buffer.

What the numbers mean. `duration` runs from the heartbeat the loop missed to
the moment it ran: the stall may have begun up to one `interval` earlier.
`detected_after` is the time from that heartbeat to the first capture: about
`threshold` plus the monitor's wake-up latency.

C code that holds the GIL (a catastrophic regex, a C extension that never
releases it) stops every Python thread, the monitor included: nothing can be
captured during such a stall. The monitor runs again the moment the call
returns, before the loop reaches its next callback; the duration is still
right, and the stack it captures is the one the call returned to, so the
reported line is the line that made the call (or the one after it).

Standard library only: this runs inside production services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from hangdoctor.analysis.classify import classify_callback
from hangdoctor.analysis.diagnose import analyze
from hangdoctor.analysis.frames import display_path, is_user_frame
from hangdoctor.analysis.loops import loop_view
from hangdoctor.analysis.source import SourceReader
from hangdoctor.capture.inprocess import snapshot_of_threads, thread_cpu_seconds
from hangdoctor.catalog import get_rule
from hangdoctor.model import Finding, Frame, LoopState, Snapshot, Thread
from hangdoctor.runtime import inflight
from hangdoctor.runtime.stall import RequestInfo, StallRecord, _remember

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("hangdoctor")

StallCallback = Callable[[StallRecord], object]
LagCallback = Callable[[float], object]

_CPU_BOUND = 0.5  # share of wall time on the CPU above which a stalled loop is busy, not waiting
_HOW_LONG = re.compile(r"\s*\((?:stuck|busy) for at least [\d.]+ s\)")
_LIVE: weakref.WeakSet[LoopWatchdog] = weakref.WeakSet()


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
        self._ack = threading.Event()
        self._seq = 0
        self._acked_seq = 0
        self._acked_at = 0.0
        self._started_at = 0.0
        self._started_cpu: float | None = None

    # -- public API ---------------------------------------------------------------------

    def add_stall_listener(self, callback: StallCallback) -> None:
        """Also call `callback(record)` for every stall (metrics, a JSONL writer...)."""
        self._stall_listeners.append(callback)

    def add_lag_listener(self, callback: LagCallback) -> None:
        """Call `callback(seconds)` with the loop's lag at every heartbeat (a histogram)."""
        self._lag_listeners.append(callback)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> LoopWatchdog:
        """Start watching the loop of the calling thread (the running loop by default)."""
        if self.running:
            raise RuntimeError("this LoopWatchdog is already running; create one per loop")
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
        # C code that takes the GIL before the new thread's first heartbeat freezes it too
        self._started_at, self._started_cpu = time.monotonic(), self._cpu()
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
        self._ack.set()  # wake a monitor waiting for a heartbeat
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

    # -- the monitor thread -------------------------------------------------------------

    def _beat(self, seq: int) -> None:  # runs on the loop: as little as possible
        if seq == self._seq:
            self._acked_at = time.monotonic()
            self._acked_seq = seq
            self._ack.set()

    def _cpu(self) -> float | None:
        return thread_cpu_seconds(self._loop_ident)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        stopping, ack = self._stopping, self._ack
        self._held_gil(self._started_at, self._started_at, self._started_cpu)
        while not stopping.is_set():
            self._seq += 1
            seq = self._seq
            ack.clear()
            sent, sent_wall, cpu0 = time.monotonic(), time.time(), self._cpu()
            try:
                loop.call_soon_threadsafe(self._beat, seq)
            except RuntimeError:  # the loop was closed under us: nothing left to watch
                break
            if ack.wait(self.threshold):
                woke = time.monotonic()
                answered = self._acked_seq == seq
                if answered:
                    self.last_lag = self._acked_at - sent
                    self._notify_lag(self.last_lag)
                if woke - sent > self.threshold:
                    # the wait ended in time, yet this thread woke late: C code holding the
                    # GIL froze it too, and the loop answered (or stopped us) when it ended
                    begun, end = sent, woke
                    if answered and self._acked_at - sent > self.threshold:
                        end = self._acked_at  # stuck before it ran the heartbeat
                    elif answered:
                        begun = self._acked_at  # ran it, then got stuck
                    wall = sent_wall + (begun - sent)
                    self._late_answer(end - begun, begun, wall, cpu0, sent)
                    continue
                if stopping.is_set():
                    break
                # C code that took the GIL right after the heartbeat ran froze this thread
                if not self._held_gil(self._acked_at, sent, cpu0):
                    self._pause(self.last_lag or 0.0)
                continue
            if stopping.is_set():
                break
            if not loop.is_running():  # stopped between two run_until_complete calls
                stopping.wait(self.interval)
                continue
            self._handle_stall(seq, sent, sent_wall, cpu0)

    def _late_answer(
        self, duration: float, begun: float, begun_wall: float, cpu0: float | None, sent: float
    ) -> None:
        """Report a stall this thread could not see at all: only its duration is certain."""
        snap, _ = self._capture(cpu0, sent)
        loop_thread = next((t for t in snap.threads if t.ident == self._loop_ident), None)
        if loop_thread is not None and loop_thread.active is False:
            return  # the loop thread did not use the CPU: this process was stopped, not stalled
        noticed = time.monotonic() - begun
        record = self._record([snap], duration, begun_wall, noticed, None, None)
        self._report(_held_gil_record(record))

    def _pause(self, lag: float) -> None:
        """Sleep until the next heartbeat is due, noticing if this thread was frozen."""
        wait = max(0.0, self.interval - lag)
        start, cpu_start = time.monotonic(), self._cpu()
        self._stopping.wait(wait)
        self._held_gil(start + wait, start, cpu_start)

    def _held_gil(self, due: float, cpu_from: float, cpu_then: float | None) -> bool:
        """Report a stall if this thread ran more than `threshold` after `due`.

        Only C code that holds the GIL can keep this thread from running on time.
        When the loop thread burned that time on the CPU, it was the one holding
        the GIL: the stall is reported, measured from `due`, with the stack the
        loop thread has the moment it lets go. True when one was reported.
        """
        loop = self._loop
        woke = time.monotonic()
        if loop is None or woke - due <= self.threshold:
            return False
        cpu_now = self._cpu()
        if cpu_then is None or cpu_now is None or woke <= cpu_from:
            return False
        if (cpu_now - cpu_then) / (woke - cpu_from) < _CPU_BOUND:
            return False  # another thread held the GIL, or the whole process was stopped
        self._seq += 1
        seq = self._seq
        if not self._stopping.is_set():  # stop() may have come first: the stall is over then
            self._ack.clear()
        with contextlib.suppress(RuntimeError):  # a closed loop: the stall is over too
            loop.call_soon_threadsafe(self._beat, seq)
        due_wall = time.time() - (woke - due)
        self._handle_stall(seq, due, due_wall, cpu_then, held_gil=True)
        return True

    def _capture(self, cpu_then: float | None, at_then: float) -> tuple[Snapshot, float | None]:
        cpu_now, at_now = self._cpu(), time.monotonic()
        active: dict[int, bool] | None = None
        if cpu_then is not None and cpu_now is not None and at_now > at_then:
            share = (cpu_now - cpu_then) / (at_now - at_then)
            active = {self._loop_ident: share >= _CPU_BOUND}
        snap = snapshot_of_threads(exclude=frozenset({threading.get_ident()}), active=active)
        return snap, cpu_now

    def _handle_stall(
        self,
        seq: int,
        sent: float,
        sent_wall: float,
        cpu0: float | None,
        *,
        held_gil: bool = False,
    ) -> None:
        loop = self._loop
        assert loop is not None
        samples: list[Snapshot] = []
        detected = time.monotonic()  # noticed; the capture below may wait for the GIL
        snap, cpu = self._capture(cpu0, sent)
        samples.append(snap)
        request = self._request(loop, detected)
        in_flight = inflight.in_flight_count()
        # spread the remaining samples over the next stretch of the stall
        gap = max(self.threshold / 2, 0.05)
        last_at = detected
        while not self._ack.wait(gap):
            if len(samples) < self.max_samples:
                snap, cpu = self._capture(cpu, last_at)
                last_at = time.monotonic()
                samples.append(snap)
            else:
                gap = 0.05
        if seq != self._seq:
            return
        # stop() wakes this thread too: the loop is running stop(), so the stall is over
        end = self._acked_at if self._acked_seq == seq else time.monotonic()
        duration = end - sent
        self.last_lag = duration
        self._notify_lag(duration)
        record = self._record(samples, duration, sent_wall, detected - sent, request, in_flight)
        if held_gil:
            record = _held_gil_record(record)
        self._report(record)

    def _request(self, loop: asyncio.AbstractEventLoop, at: float) -> RequestInfo | None:
        try:
            task = asyncio.current_task(loop)
        except Exception:  # a loop implementation without the registry: no attribution
            return None
        return inflight.request_of_task(task, at)

    def _record(
        self,
        samples: list[Snapshot],
        duration: float,
        started_wall: float,
        detected_after: float,
        request: RequestInfo | None,
        in_flight: int | None,
    ) -> StallRecord:
        diagnosis = analyze(samples)
        finding = next((f for f in diagnosis.findings if f.tid == self._loop_tid), None)
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
        dog._ack = threading.Event()
        dog._loop = None
    _LIVE.clear()


def _register_fork_handler() -> None:
    register: Any = getattr(os, "register_at_fork", None)
    if register is not None:
        register(after_in_child=_after_fork_in_child)


_register_fork_handler()
