"""Snapshots -> Diagnosis: decide per loop idle/blocked/busy/starved and name the cause.

Blocked means the loop thread sat inside the same callback, with the same
stack down to the line, in consecutive samples; the time between the first
and the last of those samples is a lower bound of the stall. Busy means it was
inside callbacks in every sample but the frames kept changing (CPU work).
Starved means the loop was idle but every AnyIO worker thread was taken, so
sync routes queue.

Where the samples carry the threads' scheduler counters (a live capture on
Linux), "on the CPU" is what the loop thread wanted, not what it got (see
`analysis.cpu`): busy needs demand, and a loop whose stack stayed put only
because it was waiting for a CPU the whole time is starved of CPU by other
load, which is said with the figures, never called busy or blocked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hangdoctor.analysis import cpu
from hangdoctor.analysis import tasks as tasks_rule
from hangdoctor.analysis.classify import Classification, classify_callback, user_frame_index
from hangdoctor.analysis.frames import frame_matches, is_user_frame
from hangdoctor.analysis.loops import LoopView, loop_view, worker_state
from hangdoctor.analysis.source import SourceReader
from hangdoctor.catalog import get_rule
from hangdoctor.catalog.rule import FramePattern
from hangdoctor.model import (
    CpuUse,
    Diagnosis,
    Finding,
    Frame,
    LoopReport,
    LoopState,
    Snapshot,
    Thread,
    Verdict,
    WaitTarget,
)

__all__ = ["analyze"]

_JOIN = (
    FramePattern("threading.py", "Thread._wait_for_tstate_lock"),
    FramePattern("threading.py", "Thread.join"),
)
_THREAD_RUN = (
    FramePattern("threading.py", "Thread.run"),
    FramePattern("threading.py", "Thread._bootstrap_inner"),
)
_POOL_WORKER = (FramePattern("concurrent/futures/thread.py", "_worker"),)
_WORK_ITEM = (FramePattern("concurrent/futures/thread.py", "_WorkItem.run"),)


@dataclass(frozen=True)
class _Sample:
    snapshot: Snapshot
    thread: Thread
    view: LoopView

    @property
    def key(self) -> tuple[tuple[str, str, int], ...] | None:
        if self.view.idle:
            return None
        return tuple((f.function, f.file, f.line) for f in self.view.callback)


def analyze(
    snapshots: Sequence[Snapshot],
    *,
    anyio_limit: int = 40,
    source_root: str | None = None,
    stuck_after: float = tasks_rule.DEFAULT_STUCK_AFTER_S,
) -> Diagnosis:
    """Analyse snapshots of one or more processes (grouped by pid, in time order).

    Where the snapshots carry tasks, a loop that answers is also judged by them:
    tasks that wait on one another past `stuck_after` seconds (a deadlock at once)
    make it `stuck` (HD6xx).
    """
    by_pid: dict[int, list[Snapshot]] = {}
    for snap in snapshots:
        by_pid.setdefault(snap.pid, []).append(snap)
    loops: list[LoopReport] = []
    findings: list[Finding] = []
    notes: list[str] = []
    spans: list[float] = []
    for pid, series in by_pid.items():
        if all(s.taken_at is not None for s in series):
            series.sort(key=lambda s: s.taken_at or 0.0)
            spans.append((series[-1].taken_at or 0.0) - (series[0].taken_at or 0.0))
        reader = SourceReader(root=series[-1].root, source_root=source_root, cwd=series[-1].cwd)
        p_loops, p_findings, p_notes = _analyze_process(
            pid, series, reader, anyio_limit, stuck_after
        )
        loops.extend(p_loops)
        findings.extend(p_findings)
        notes.extend(p_notes)
    if by_pid and not loops:
        notes.append(
            "No asyncio or uvloop event-loop thread was found in any process looked at; "
            "point hangdoctor at the server's worker process."
        )
    if any(len(series) == 1 for series in by_pid.values()) and loops:
        notes.append(
            "Only one sample per process: blocked and busy cannot be told apart from a "
            "momentary callback with certainty; capture several samples."
        )
    verdict = max(
        (Verdict.from_state(lp.state) for lp in loops),
        key=lambda v: v.severity,
        default=Verdict.HEALTHY,
    )
    return Diagnosis(
        verdict=verdict,
        loops=tuple(loops),
        findings=tuple(findings),
        pids=tuple(by_pid),
        samples=max((len(s) for s in by_pid.values()), default=0),
        sampled_for_s=round(max(spans, default=0.0), 3),
        notes=tuple(notes),
    )


def _loop_series(series: list[Snapshot]) -> dict[int, list[_Sample]]:
    loops: dict[int, list[_Sample]] = {}
    for snap in series:
        for thread in snap.threads:
            view = loop_view(thread)
            if view is not None:
                loops.setdefault(thread.tid, []).append(_Sample(snap, thread, view))
    return loops


def _analyze_process(
    pid: int,
    series: list[Snapshot],
    reader: SourceReader,
    anyio_limit: int,
    stuck_after: float = tasks_rule.DEFAULT_STUCK_AFTER_S,
) -> tuple[list[LoopReport], list[Finding], list[str]]:
    loops: list[LoopReport] = []
    findings: list[Finding] = []
    notes: list[str] = []
    loop_series = _loop_series(series)
    if not loop_series:
        cmd = series[-1].command or ""
        notes.append(
            f"pid {pid} runs no event loop"
            + (f" ({cmd[:60]})" if cmd else "")
            + ": a supervisor, or not an asyncio server."
        )
    for tid, samples in loop_series.items():
        report, finding = _judge_loop(pid, tid, samples, reader)
        no_cpu = report.cpu is not None and cpu.starved(report.cpu)
        if no_cpu:
            notes.append(_starved_note(pid, report, samples))
        if (
            report.state is LoopState.IDLE
            and not no_cpu  # it did not keep answering: it hardly ran
            and len(samples) >= 2
            and all(s.key for s in samples)
        ):
            notes.append(
                f"pid {pid} {report.thread or 'loop'}: running a different short callback in "
                "every sample, with no code of yours in common: a loaded loop that keeps "
                "answering."
            )
        if report.state is LoopState.IDLE:
            starved = _starvation(pid, series, reader, anyio_limit)
            if starved is not None:
                busy, total, finding = starved
                report = LoopReport(
                    pid=pid,
                    tid=tid,
                    thread=report.thread,
                    kind=report.kind,
                    state=LoopState.STARVED,
                    busy_workers=busy,
                    total_workers=total,
                    cpu=report.cpu,
                )
                finding = _with_loop(finding, report)
        if report.state is LoopState.IDLE:
            judged = tasks_rule.judge_tasks(
                pid,
                series,
                reader,
                stuck_after=stuck_after,
                loop_thread=report.thread,
                loop_tid=tid,
                loop_count=len(loop_series),
            )
            notes.extend(judged.notes)
            if judged.findings:
                report = replace(report, state=LoopState.STUCK)
                findings.extend(judged.findings)
        loops.append(report)
        if finding is not None:
            findings.append(finding)
    return loops, findings, notes


def _trailing_run(samples: list[_Sample]) -> list[_Sample]:
    last = samples[-1].key
    if last is None:
        return []
    run = [samples[-1]]
    for s in reversed(samples[:-1]):
        if s.key != last:
            break
        run.insert(0, s)
    return run


def _span(samples: list[_Sample]) -> float | None:
    first, last = samples[0].snapshot.taken_at, samples[-1].snapshot.taken_at
    if first is None or last is None or len(samples) < 2:
        return None
    return round(last - first, 3)


def _judge_loop(
    pid: int, tid: int, samples: list[_Sample], reader: SourceReader
) -> tuple[LoopReport, Finding | None]:
    last = samples[-1]
    name, kind = last.thread.name, last.view.kind
    run = _trailing_run(samples)
    everywhere = all(s.key is not None for s in samples)
    state = LoopState.IDLE
    chosen: list[_Sample] = []
    overall = cpu.use_over([s.thread for s in samples])
    run_use: CpuUse | None = None
    if len(run) >= 2 or (len(samples) == 1 and run):
        run_use = cpu.use_over([s.thread for s in run])
        if run_use is not None:
            on_cpu = cpu.cpu_bound(run_use)
        else:
            on_cpu = all(s.thread.active is True for s in run)
        chosen, state = run, LoopState.BLOCKED
        cls = classify_callback(last.view.callback, reader, on_cpu=on_cpu)
        if run_use is not None and _stack_says_nothing(run_use, cls):
            # runnable the whole time but hardly run: the stack stayed put because the
            # thread was waiting for a CPU, which says nothing about the code it is in
            state = LoopState.IDLE
        elif cls.rule.code == "HD501":
            state = LoopState.BUSY
    elif everywhere and len(samples) >= 2 and _busy_focus(samples, reader)[0] is not None:
        # In a callback every time, but a different one: only work that stays inside one
        # function of the user's is CPU work on the loop. Different short callbacks each
        # sample (parsing requests under load) is a loop that keeps answering: healthy.
        run_use = overall
        if run_use is not None:
            on_cpu = cpu.cpu_bound(run_use)
        else:
            on_cpu = sum(s.thread.active is True for s in samples) * 2 > len(samples)
        cls = classify_callback(last.view.callback, reader, on_cpu=on_cpu)
        chosen = samples
        if on_cpu or cls.rule.code in ("HD501", "HD900"):
            state = LoopState.BUSY
            cls = Classification(get_rule("HD501"), cls.user_index, cls.evidence, cls.via_frame)
        else:
            state = LoopState.BLOCKED
    if state is LoopState.IDLE:
        return LoopReport(pid=pid, tid=tid, thread=name, kind=kind, state=state, cpu=overall), None
    blocked_for = _span(chosen)
    report = LoopReport(
        pid=pid,
        tid=tid,
        thread=name,
        kind=kind,
        state=state,
        blocked_for_s=blocked_for,
        cpu=overall,
    )
    hot = ""
    if state is LoopState.BUSY:
        chosen = _without_unwound_tail(chosen)
        last = chosen[-1]
        stable, hot = _busy_focus(chosen, reader)
        if stable is not None:
            cls = replace(cls, user_index=stable)
        if run_use is not None and cpu.starved(run_use):
            starved = f"it also {cpu.describe_starved(run_use)}: other load takes the CPU"
            hot = f"{hot}; {starved}" if hot else starved
    finding = _finding(report, last, cls, reader, hot)
    return report, finding


def _stack_says_nothing(use: CpuUse, cls: Classification) -> bool:
    """The loop was starved of CPU and its stack is no evidence of a cause.

    Waiting for a CPU most of the time it wanted one, the thread stayed where the
    scheduler last stopped it. In asyncio's or a framework's own code (no user
    frame) that is a loop between callbacks, not busy work; in the user's code it
    is CPU work only if the thread really ran there. A blocking call's line, seen
    while the thread was runnable rather than asleep, was not what it waited on.
    """
    if not cpu.starved(use):
        return False
    if cls.rule.code != "HD501":
        return True
    return cls.user_index is None or cpu.ran_little(use)


def _starved_note(pid: int, report: LoopReport, samples: list[_Sample]) -> str:
    """What a loop starved of CPU looked like, with the figures."""
    use = report.cpu
    assert use is not None
    where = ""
    if report.state is LoopState.IDLE:
        top = samples[-1].view.callback
        if not top:
            where = ", waiting in the selector"
        elif any(is_user_frame(f) for f in top):
            where = ", in your code but running too little there to say it is what holds it up"
        else:
            where = ", stopped in the server's or asyncio's own code, not in a callback of yours"
    return (
        f"pid {pid} {report.thread or 'loop'}: starved of CPU: it {cpu.describe_starved(use)} "
        f"over the samples{where}. Other processes on this machine, or the container's CPU "
        "limit, take the CPU: every request waits for it, however the code is written."
    )


def _user_frames(callback: tuple[Frame, ...]) -> list[tuple[str, str]]:
    return [(f.function, f.file) for f in callback if is_user_frame(f)]


def _without_unwound_tail(samples: list[_Sample]) -> list[_Sample]:
    """The samples without those taken as the busy work returned.

    A sample that shows only the outer frames of the one before, at the same lines,
    caught the step on its way out of the work (the handler between the call's
    return and its next await): it says nothing about where the time went, and
    keeping it would move the blame from the work to the line that called it.
    """
    kept = list(samples)
    while len(kept) >= 2:
        tail = _user_lines(kept[-1].view.callback)
        before = _user_lines(kept[-2].view.callback)
        if not tail or len(tail) >= len(before) or before[-len(tail) :] != tail:
            break
        kept.pop()
    return kept


def _user_lines(callback: tuple[Frame, ...]) -> list[tuple[str, str, int]]:
    return [(f.function, f.file, f.line) for f in callback if is_user_frame(f)]


def _busy_focus(samples: list[_Sample], reader: SourceReader) -> tuple[int | None, str]:
    """Where busy work is reported: the innermost user frame present in every sample.

    CPU work moves between functions from sample to sample; the innermost frame all
    samples share holds all of the work seen (a helper when every sample is inside
    it, else the handler that calls it). The innermost user frame seen most often is
    named as the hot spot when it is elsewhere.
    """
    last = samples[-1].view.callback
    common = set(_user_frames(last))
    for s in samples[:-1]:
        common &= set(_user_frames(s.view.callback))
    stable = next(
        (i for i, f in enumerate(last) if is_user_frame(f) and (f.function, f.file) in common),
        None,
    )
    spots: Counter[tuple[str, str, int]] = Counter()
    for s in samples:
        top = next((f for f in s.view.callback if is_user_frame(f)), None)
        if top is not None:
            spots[(top.function, top.file, top.line)] += 1
    if not spots or stable is None:
        return stable, ""
    (function, file, line), n = spots.most_common(1)[0]
    focus = last[stable]
    if (function, file, line) == (focus.function, focus.file, focus.line):
        return stable, ""
    return stable, (
        f"the hottest line is in {function} at {reader.display(file)}:{line} "
        f"({n} of {len(samples)} samples)"
    )


def _async_caller(
    stack: tuple[Frame, ...], user_index: int | None, code: str, reader: SourceReader
) -> Frame | None:
    """The coroutine of the user's that called the sync helper where the loop blocks.

    `scan` reports the async caller, a live stack the helper: naming both says where
    the fix goes (a thread at the caller) whichever report the user reads first. CPU
    work and an executor's exit have fixes of their own, so they get no such advice.
    """
    if user_index is None or not (code.startswith("HD2") or code == "HD102"):
        return None
    helper = stack[user_index]
    if reader.is_async_def(helper.file, helper.line) is not False:
        return None  # the blocking line is in the coroutine itself (or unreadable)
    for frame in stack[user_index + 1 :]:
        if not is_user_frame(frame):
            continue
        if reader.is_async_def(frame.file, frame.line):
            return frame
    return None


def _finding(
    report: LoopReport, sample: _Sample, cls: Classification, reader: SourceReader, hot: str = ""
) -> Finding:
    stack = sample.thread.frames
    rule = cls.rule
    if cls.user_index is not None:
        user = stack[cls.user_index]
    else:
        user = sample.view.callback[0] if sample.view.callback else stack[0]
    line = user.line
    if rule.code == "HD101":
        line = reader.enclosing_with(user.file, user.line) or user.line
    source = reader.line(user.file, line)
    waits = _waits_for(sample, reader)
    where = f"{reader.display(user.file)}:{line}"
    if rule.code == "HD101":
        what = (
            f"Leaving the `with` executor block in {user.function} at {where} "
            "runs shutdown(wait=True) on the loop"
        )
    elif rule.code == "HD501":
        what = f"CPU work in {user.function} at {where} keeps the loop busy"
        if hot:
            what += f"; {hot}"
    elif rule.code == "HD900":
        called = cls.evidence or "A call"
        what = (
            f"{called} in {user.function} at {where} blocks the loop; "
            "hangdoctor does not know this call"
        )
    else:
        called = cls.evidence or f"A blocking call ({rule.name})"
        what = f"{called} in {user.function} at {where} blocks the loop"
    if waits is not None:
        what += f"; it waits for {waits.description}"
    caller = _async_caller(stack, cls.user_index, rule.code, reader)
    if caller is not None:
        what += (
            f"; called from async {caller.function} at {reader.display(caller.file)}:"
            f"{caller.line}: run the call in a thread there (`await asyncio.to_thread(...)`)"
        )
    if report.blocked_for_s:
        how = "busy" if report.state is LoopState.BUSY else "stuck"
        what += f" ({how} for at least {report.blocked_for_s:.1f} s)"
    return Finding(
        cwd=reader.cwd,
        code=rule.code,
        message=what + ".",
        file=user.file,
        line=line,
        function=user.function,
        pid=report.pid,
        thread=report.thread,
        tid=report.tid,
        blocked_for_s=report.blocked_for_s,
        state=report.state,
        source=source.strip() if source else None,
        waits_for=waits,
        stack=stack,
        user_frame_index=cls.user_index,
    )


def _addr_of_self(frame: Frame) -> int | None:
    for local in frame.locals:
        if local.name == "self" and local.addr is not None:
            return local.addr
    return None


def _find_thread_by_addr(snapshot: Snapshot, addr: int) -> Thread | None:
    for thread in snapshot.threads:
        for frame in thread.frames:
            if any(frame_matches(frame, p) for p in _THREAD_RUN) and _addr_of_self(frame) == addr:
                return thread
    return None


def _busy_pool_workers(snapshot: Snapshot, exclude: int) -> list[Thread]:
    out = []
    for thread in snapshot.threads:
        if thread.tid == exclude:
            continue
        frames = thread.frames
        worker = next((i for i, f in enumerate(frames) if frame_matches(f, _POOL_WORKER[0])), None)
        if worker is None:
            continue
        if any(frame_matches(f, _WORK_ITEM[0]) for f in frames[:worker]):
            out.append(thread)
    return out


def _waits_for(sample: _Sample, reader: SourceReader) -> WaitTarget | None:
    """Which thread the loop waits for: by object address when locals were captured."""
    callback = sample.view.callback
    target: Thread | None = None
    joined = next(
        (f for f in callback if any(frame_matches(f, p) for p in _JOIN)),
        None,
    )
    how = ""
    if joined is not None:
        addr = _addr_of_self(joined)
        if addr is not None:
            target = _find_thread_by_addr(sample.snapshot, addr)
            how = "joined"
    if target is None:
        waits_on_pool = any(
            f.function.endswith(("shutdown", "__exit__", "result", "wait", "as_completed"))
            and "concurrent/futures" in f.file.replace("\\", "/")
            for f in callback
        )
        if not waits_on_pool:
            return None
        busy = _busy_pool_workers(sample.snapshot, exclude=sample.thread.tid)
        if not busy:
            return None
        target = busy[0]
        how = "busy" if len(busy) == 1 else f"busy (1 of {len(busy)})"
    idx = user_frame_index(target.frames)
    frame = target.frames[idx] if idx is not None else (target.frames[0] if target.frames else None)
    label = f"worker thread {target.name or '?'} (tid {target.tid})"
    if frame is None:
        return WaitTarget(description=label, thread_name=target.name, tid=target.tid)
    src = reader.line(frame.file, frame.line) if is_user_frame(frame) or idx is not None else None
    desc = f"{label}, {how}, in {frame.function} at {reader.display(frame.file)}:{frame.line}"
    return WaitTarget(
        description=desc,
        thread_name=target.name,
        tid=target.tid,
        function=frame.function,
        file=frame.file,
        line=frame.line,
        source=src.strip() if src else None,
    )


def _starvation(
    pid: int, series: list[Snapshot], reader: SourceReader, anyio_limit: int
) -> tuple[int, int, Finding] | None:
    """Every sample shows at least `anyio_limit` busy AnyIO workers: sync routes queue."""
    counts: list[tuple[int, int]] = []
    for snap in series:
        states = [s for s in (worker_state(t) for t in snap.threads) if s is not None]
        counts.append((sum(states), len(states)))
    if not counts or min(busy for busy, _ in counts) < anyio_limit:
        return None
    busy, total = counts[-1]
    last = series[-1]
    places: Counter[tuple[str, int, str]] = Counter()
    example: dict[tuple[str, int, str], Thread] = {}
    for thread in last.threads:
        if worker_state(thread):
            idx = user_frame_index(thread.frames)
            if idx is None:
                continue
            f = thread.frames[idx]
            key = (f.file, f.line, f.function)
            places[key] += 1
            example.setdefault(key, thread)
    if places:
        (file, line, function), n = places.most_common(1)[0]
        thread = example[(file, line, function)]
        stack = thread.frames
        user_index = user_frame_index(stack)
    else:
        file, line, function, n = "?", 0, "?", 0
        stack, user_index = (), None
    source = reader.line(file, line) if places else None
    rule = get_rule("HD401")
    message = (
        f"{busy} of {total} AnyIO worker threads are busy ({n} in {function} at "
        f"{reader.display(file)}:{line}); sync routes, a sync /health included, queue for a thread."
    )
    finding = Finding(
        cwd=reader.cwd,
        code=rule.code,
        message=message,
        file=file,
        line=line,
        function=function,
        pid=pid,
        state=LoopState.STARVED,
        source=source.strip() if source else None,
        waits_for=WaitTarget(
            description=f"a free AnyIO worker thread ({busy} of {total} busy, limit {anyio_limit})"
        ),
        stack=stack,
        user_frame_index=user_index,
    )
    return busy, total, finding


def _with_loop(finding: Finding, report: LoopReport) -> Finding:
    return replace(finding, thread=report.thread, tid=report.tid)
