"""Tasks -> HD6xx findings: who waits on what, who holds it, and whether it will ever end.

A loop can answer while its requests wait forever on one another. Every source
that sees tasks (the in-process runtime, CPython 3.14's remote reader) gives
each task's await chain; this module works out the rest the same way for all:

- what each task waits on: from the catalog's wait patterns over the library
  frames of its chain (`catalog.waits`), named as the user's code names it
  (the expression its line awaits, `analysis.lexical`), unless the source
  already knew (the runtime sees the objects themselves);
- what each task holds: the `async with` items around the lines of its frames;
- who holds what a task waits on: the holders of the same key (the object's
  identity in-process, `name@file` from the source);
- and the verdict, from evidence only: a cycle in holds/waits-for is a deadlock
  whatever the time (HD601); a full limiter or pool with waiters (HD604, HD602),
  a wait nothing alive will end (HD603), a stream whose client left (HD605) are
  reported once a task has waited past `stuck_after` — the runtime measures that
  wait exactly (the awaited future did not change), from outside it is the span
  over which the task's await chain did not move; a server shutting down that
  waits (HD606) is reported as soon as it is seen.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hangdoctor.analysis.frames import frame_matches, is_user_frame
from hangdoctor.analysis.lexical import awaited_at, held_at, module_names
from hangdoctor.analysis.source import SourceReader
from hangdoctor.catalog.rule import FramePattern
from hangdoctor.catalog.waits import CONTAINED, CONTAINERS, WAITS, WaitPattern
from hangdoctor.model import (
    Finding,
    Frame,
    Holder,
    LoopState,
    Snapshot,
    Task,
    WaitKind,
    WaitsOn,
)

__all__ = ["DEFAULT_STUCK_AFTER_S", "TaskJudgement", "age", "classify_wait", "judge_tasks"]

DEFAULT_STUCK_AFTER_S = 30.0

# waits that hold requests up when they never end; sleeps, sockets and threads are
# other families' business (a thread wait is HD1xx/HD2xx on the thread's side)
_LIMITS = {WaitKind.SEMAPHORE, WaitKind.LIMITER}
_WAKEUPS = {
    WaitKind.EVENT,
    WaitKind.FUTURE,
    WaitKind.QUEUE,
    WaitKind.STREAM,
    WaitKind.CONDITION,
    WaitKind.TASK,
}
_BODY = "the request body"
_SINGLE_HOLDER = {WaitKind.LOCK}
# the waits exhausted() groups, and the shutdown's, for the loops over every task: a
# member read off its Enum class costs more than the whole test otherwise
_EXHAUSTIBLE = _LIMITS | {WaitKind.POOL}
_SHUTDOWN = WaitKind.SHUTDOWN
_RELEASES_WHILE_WAITING = (
    FramePattern("asyncio/locks.py", "Condition.wait"),
    FramePattern("asyncio/locks.py", "Condition.wait_for"),
    FramePattern("anyio/_core/_synchronization.py", "Condition.wait"),
)
# the server's lifespan channel: the app's lifespan handler waits on it from start-up to
# shutdown by design, through any middleware of the user's that wraps the app
_LIFESPAN_RECEIVE = (
    FramePattern("uvicorn/lifespan/on.py", "LifespanOn.receive"),
    FramePattern("hypercorn/asyncio/lifespan.py", "Lifespan.asgi_receive"),
    FramePattern("hypercorn/trio/lifespan.py", "Lifespan.asgi_receive"),
)
_RANK = {
    **dict.fromkeys(
        (WaitKind.EVENT, WaitKind.FUTURE, WaitKind.THREAD, WaitKind.IO, WaitKind.SLEEP), 1
    ),
    **dict.fromkeys((WaitKind.QUEUE, WaitKind.CONDITION, WaitKind.TASK, WaitKind.UNKNOWN), 2),
    **dict.fromkeys(
        (
            WaitKind.LOCK,
            WaitKind.SEMAPHORE,
            WaitKind.LIMITER,
            WaitKind.STREAM,
            WaitKind.RECEIVE,
            WaitKind.POOL,
            WaitKind.SHUTDOWN,
        ),
        3,
    ),
}


@dataclass(frozen=True)
class TaskJudgement:
    """The HD6xx findings of one process, its tasks as understood, and notes."""

    findings: tuple[Finding, ...]
    tasks: tuple[Task, ...]  # with waits_on and holds filled in
    notes: tuple[str, ...]


def judge_tasks(
    pid: int,
    series: Sequence[Snapshot],
    reader: SourceReader,
    *,
    stuck_after: float = DEFAULT_STUCK_AFTER_S,
    loop_thread: str | None = None,
    loop_tid: int | None = None,
    loop_count: int = 1,
) -> TaskJudgement:
    """Judge the tasks of the last snapshot of `series` that has them (one process).

    With several loops in the process, only the tasks of the loop on thread
    `loop_tid` are judged (tasks that do not say their loop go with every loop).
    """
    seen = [s for s in series if s.tasks_source is not None]
    if not seen:
        return TaskJudgement((), (), ())
    last = seen[-1]

    def ours(task: Task) -> bool:
        return task.loop_tid is None or task.loop_tid == loop_tid

    # tasks from outside come bare, and thousands share one await chain (every request
    # in the same handler): what a chain waits on and holds is worked out once
    known: dict[tuple[tuple[Frame, ...], bool], tuple[WaitsOn | None, tuple[WaitsOn, ...]]] = {}

    # the process read its own objects (the runtime, or code injected into it)
    runtime = last.tasks_source in ("runtime", "inject")

    def understood(task: Task) -> Task:
        if task.waits_on is not None or task.holds:
            return _understood(task, reader)
        key = (task.frames, bool(task.awaited_by))
        if key not in known:
            done = _understood(task, reader)
            known[key] = (done.waits_on, done.holds)
        waits, holds = known[key]
        return replace(task, waits_on=waits, holds=holds)

    mine: list[Task] = []
    unmeasured = False
    for t in last.tasks:
        if t.done or (loop_count > 1 and not ours(t)):
            continue
        if not runtime:
            t = understood(t)
        elif t.holds:
            # what each task waits on and holds is known, not inferred; only a
            # condition's released lock is taken off
            t = _released(t)
        mine.append(t)
        unmeasured = unmeasured or t.waiting_s is None
    tasks = tuple(mine)
    # earlier reads by (id, name): the id is an address, and a new task may be allocated
    # where an ended one was; the name (Task-N counts up) tells them apart
    earlier = [{(t.id, t.name): t for t in snap.tasks} for snap in seen[:-1]]
    if unmeasured:
        tasks = tuple(
            t if t.waiting_s is not None else replace(t, waiting_s=_waiting(t, seen, earlier))
            for t in tasks
        )
    ctx = _Context(pid, tasks, reader, stuck_after, loop_thread, loop_tid, last.cwd)
    findings: list[Finding] = []
    in_cycle: set[int] = set()
    for cycle in _cycles(tasks):
        findings.append(ctx.deadlock(cycle))
        in_cycle.update(t.id for t in cycle)
    rest = [t for t in tasks if t.id not in in_cycle] if in_cycle else list(tasks)
    findings.extend(ctx.shutdown(rest))
    findings.extend(ctx.exhausted(rest))
    # a task already named as the holder of a full limiter or pool is part of that cause;
    # a response whose client left is that first, whatever it waits on
    named = {h.task_id for f in findings for h in f.holders}
    if named:
        rest = [t for t in rest if t.id not in named]
    gone = ctx.after_disconnect(rest)
    findings.extend(gone)
    left = {f.task_id for f in gone}
    findings.extend(ctx.lost_wakeups([t for t in rest if t.id not in left] if left else rest))
    notes: list[str] = []
    if not findings:
        notes.extend(_undecided(pid, tasks, stuck_after, last.tasks_source))
    if (
        last.tasks_source == "remote"
        and loop_tid is not None
        and loop_count > 1
        and not any(t.loop_tid == loop_tid for t in last.tasks)
    ):
        notes.append(
            f"pid {pid} {loop_thread or 'thread'} (tid {loop_tid}): CPython 3.14 lists the tasks "
            "of the main thread's loop only; the tasks of this loop were not looked at "
            "(`diagnose --inject` reads them from inside the process)."
        )
    return TaskJudgement(tuple(findings), tasks, tuple(notes))


def _undecided(
    pid: int, tasks: Sequence[Task], stuck_after: float, source: str | None
) -> list[str]:
    """Tasks queued on a lock, a pool or a limiter whose wait was not measured long enough."""
    if source not in ("remote", "inject") or math.isfinite(stuck_after):
        return []
    queued = [
        t
        for t in tasks
        if t.waits_on is not None
        and t.waits_on.kind in (_LIMITS | {WaitKind.LOCK, WaitKind.POOL})
        and (t.waiting_s is None or t.waiting_s < stuck_after)
    ]
    if not queued:
        return []
    what = sorted({t.waits_on.describe() for t in queued if t.waits_on is not None})
    return [
        f"pid {pid}: {len(queued)} task(s) wait on {', '.join(what[:3])}; whether they are "
        "stuck or only queued takes time to tell: run again with --stuck-after 10 (the "
        "tasks are then read over 10 s)."
    ]


def age(seconds: float | None) -> str:
    """A wait's length as Go's goroutine dump gives it: "0.5 s", "41 s", "5 min", "2 h"."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def classify_wait(frames: Sequence[Frame]) -> tuple[WaitPattern | None, int]:
    """The catalog's wait pattern for an await chain (innermost first), and its frame index.

    Only the library frames before the first user frame count. Among the waits, a
    resource (a lock, a limiter) says more than the primitive it is built on (an
    event, a future) or the operation that takes it (a thread job waits for a
    limiter token first): the highest `_RANK` wins, the outermost among equals
    (an anyio Event sleeps on an asyncio Event; the user awaited the anyio one).
    A container (a pool) re-labels the wait it holds anywhere in that run.
    """
    run: list[Frame] = []
    for frame in frames:
        if is_user_frame(frame):
            break
        run.append(frame)
    inner: WaitPattern | None = None
    inner_at = -1
    for i, frame in enumerate(run):
        for pattern in WAITS:
            if frame_matches(frame, pattern.frame):
                if inner is None or _RANK[pattern.kind] >= _RANK[inner.kind]:
                    inner, inner_at = pattern, i
                break
    kind = inner.kind if inner is not None else WaitKind.UNKNOWN
    for i, frame in enumerate(run):
        for pattern in CONTAINERS:
            contains = pattern.contains
            if contains is None:
                contains = CONTAINED.get(pattern.kind, frozenset())
            if kind in contains and frame_matches(frame, pattern.frame):
                return pattern, i
    return inner, inner_at


# frames of a task that serves a client: a request, a streaming response's body
_SERVING = (
    FramePattern("uvicorn/protocols/http/h11_impl.py", "RequestResponseCycle.run_asgi"),
    FramePattern("uvicorn/protocols/http/httptools_impl.py", "RequestResponseCycle.run_asgi"),
    FramePattern("starlette/responses.py", "StreamingResponse.stream_response"),
    FramePattern("hypercorn/protocol/http_stream.py", None),
)


def _serves_a_client(task: Task) -> bool:
    """A request, a stream, or the user's own work: what a graceful shutdown waits for."""
    if task.request is not None or _first_user(task) is not None:
        return True
    return any(frame_matches(f, p) for f in task.frames for p in _SERVING)


def _user_frames(task: Task) -> list[Frame]:
    return [f for f in task.frames if is_user_frame(f)]


def _waits_for_lifespan(task: Task) -> bool:
    """The app's lifespan handler waiting for the server's next lifespan event."""
    return any(frame_matches(f, p) for f in task.frames[:4] for p in _LIFESPAN_RECEIVE)


def _first_user(task: Task) -> Frame | None:
    users = _user_frames(task)
    return users[0] if users else None


def _source_key(reader: SourceReader, frame: Frame, expr: str) -> str | None:
    """A key for the object `expr` names in `frame`, good across tasks of one process.

    A module-level name is one object; `self.x` in methods of one class is taken as
    one object too (services keep one instance); a local name is not comparable.
    """
    tree = reader.tree(frame.file)
    if tree is None:
        return None
    root = expr.split(".", 1)[0].split("[", 1)[0]
    if root in module_names(tree):
        return f"{expr}@{frame.file}"
    if root == "self" and "." in frame.function:
        owner = frame.function.split(".<locals>", 1)[0].rsplit(".", 1)[0]
        return f"{owner}:{expr}@{frame.file}"
    return None


def _understood(task: Task, reader: SourceReader) -> Task:
    """The task with what it waits on and what it holds filled in from frames and source."""
    waits = task.waits_on
    user = _first_user(task)
    if waits is None:
        pattern, _ = classify_wait(task.frames)
        if pattern is not None:
            waits = WaitsOn(kind=pattern.kind, type=pattern.type)
        elif user is not None and task.frames and task.frames[0] is user:
            # the user's own line awaits something with no frame of its own: a future,
            # a task, a gather
            waits = WaitsOn(kind=WaitKind.TASK if task.awaited_by else WaitKind.FUTURE)
    if waits is not None and user is not None and (waits.name is None or waits.key is None):
        tree = reader.tree(user.file)
        name = waits.name or (awaited_at(tree, user.line) if tree is not None else None)
        key = waits.key or (_source_key(reader, user, name) if name else None)
        waits = replace(waits, name=name, key=key, created_at=waits.created_at)
    holds = task.holds
    if not holds:
        found: list[WaitsOn] = []
        for frame in _user_frames(task):
            tree = reader.tree(frame.file)
            if tree is None:
                continue
            for held in held_at(tree, frame.line):
                key = _source_key(reader, frame, held.expr) if held.simple else None
                found.append(
                    WaitsOn(
                        kind=WaitKind.UNKNOWN,
                        name=held.expr,
                        key=key,
                        created_at=f"{frame.file}:{held.line}",
                    )
                )
        holds = tuple(found)
    return _released(replace(task, waits_on=waits, holds=holds))


def _released(task: Task) -> Task:
    """`task` without the condition it waits on among what it holds.

    Condition.wait releases the lock it was entered with while it waits: a task in
    `async with cond: await cond.wait()` does not hold `cond`.
    """
    waits = task.waits_on
    if waits is None or not task.holds:
        return task
    holds = tuple(h for h in task.holds if h.key is None or h.key != waits.key)
    if len(holds) == len(task.holds) or not _in_condition_wait(task.frames):
        return task  # the cheap test first: the other hashes the whole chain
    return replace(task, holds=holds)


@functools.lru_cache(maxsize=4096)
def _in_condition_wait(frames: tuple[Frame, ...]) -> bool:
    return any(frame_matches(f, p) for f in frames for p in _RELEASES_WHILE_WAITING)


def _waiting(
    task: Task, seen: Sequence[Snapshot], earlier: Sequence[dict[tuple[int, str], Task]]
) -> float | None:
    """How long `task` has waited: the source's own figure, else the unmoved span."""
    if task.waiting_s is not None:
        return task.waiting_s
    last = seen[-1]
    if last.taken_at is None:
        return None
    key = task.frames
    since = last.taken_at
    for snap, index in zip(reversed(seen[:-1]), reversed(earlier), strict=True):
        same = index.get((task.id, task.name))
        if same is None or same.frames != key or snap.taken_at is None:
            break
        since = snap.taken_at
    return round(last.taken_at - since, 3) if since < last.taken_at else None


def _cycles(tasks: Sequence[Task]) -> list[list[Task]]:
    """Cycles in waits-for: a task waits for the holder of its key, or for a task it awaits."""
    holders: dict[str, list[Task]] = defaultdict(list)
    awaited = locked = False
    for t in tasks:
        for held in t.holds:
            if held.key:
                holders[held.key].append(t)
        awaited = awaited or bool(t.awaited_by)
        locked = locked or (t.waits_on is not None and t.waits_on.kind in _SINGLE_HOLDER)
    if not awaited and not (locked and holders):
        return []  # no task waits for another (most looks): no graph to build
    by_id = {t.id: t for t in tasks}
    edges: dict[int, list[int]] = defaultdict(list)
    for t in tasks:
        waits = t.waits_on
        # one holder of a lock blocks its waiter; a pool or a semaphore has several, any of
        # which may free a place: those waits are judged by exhausted(), not as a cycle
        if waits is not None and waits.key in holders and waits.kind in _SINGLE_HOLDER:
            for h in holders[waits.key]:
                edges[t.id].append(h.id)
        for parent in t.awaited_by:
            if parent in by_id:
                edges[parent].append(t.id)
    cycles: list[list[Task]] = []
    if not edges:
        return cycles
    done: set[int] = set()
    for start in tasks:
        # a task that waits for no other cannot be on a cycle: most of a server's tasks
        if start.id in done or start.id not in edges:
            continue
        path: list[int] = []
        on_path: set[int] = set()
        stack: list[tuple[int, int]] = [(start.id, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                path.append(node)
                on_path.add(node)
            nxt = edges.get(node, [])
            if i < len(nxt):
                stack.append((node, i + 1))
                child = nxt[i]
                if child in on_path:
                    ring = path[path.index(child) :]
                    if not any(set(ring) == {x.id for x in c} for c in cycles):
                        cycles.append([by_id[x] for x in ring])
                elif child not in done:
                    stack.append((child, 0))
            else:
                path.pop()
                on_path.discard(node)
                done.add(node)
    return cycles


@dataclass
class _Context:
    pid: int
    tasks: tuple[Task, ...]
    reader: SourceReader
    stuck_after: float
    loop_thread: str | None
    loop_tid: int | None
    cwd: str | None

    # ---- shared pieces ---------------------------------------------------------------

    def where(self, task: Task) -> tuple[Frame | None, int | None]:
        for i, f in enumerate(task.frames):
            if is_user_frame(f):
                return f, i
        return (task.frames[0], 0) if task.frames else (None, None)

    def show(self, frame: Frame | None) -> str:
        if frame is None:
            return "an unknown line"
        return f"{self.reader.display(frame.file)}:{frame.line}"

    def held_where(self, task: Task, key: str | None) -> Frame | None:
        """The frame of `task` that holds `key` (its line is inside the `async with`)."""
        for held in task.holds:
            if key and held.key == key and held.created_at:
                file, _, line = held.created_at.rpartition(":")
                for f in task.frames:
                    if f.file == file:
                        return replace(f, line=int(line)) if line.isdigit() else f
        return None

    def holder(self, task: Task, key: str | None) -> Holder:
        at, _ = self.where(task)
        # no `async with` says where it took it (a thread token a `run_sync` call holds, a
        # lock's recorded owner): it holds it where it is now
        took = self.held_where(task, key) or at
        return Holder(
            task=task.name,
            task_id=task.id,
            file=None if took is None else self.reader.display(took.file),
            line=None if took is None else took.line,
            function=None if took is None else took.function,
            source=None if took is None else self.reader.line(took.file, took.line),
            since_s=task.waiting_s,
            waits_on=task.waits_on,
            waits_at=None if at is None else self.show(at),
        )

    def holders_of(self, key: str | None, but: int | None = None) -> list[Task]:
        if not key:
            return []
        return [t for t in self.tasks if t.id != but and any(h.key == key for h in t.holds)]

    def finding(self, code: str, task: Task, message: str, **extra: object) -> Finding:
        frame, index = self.where(task)
        return Finding(
            code=code,
            message=message,
            file=self.reader.display(frame.file) if frame else "<unknown>",
            line=frame.line if frame else 0,
            function=frame.function if frame else "<unknown>",
            pid=self.pid,
            thread=self.loop_thread,
            tid=self.loop_tid,
            state=LoopState.STUCK,
            source=self.reader.line(frame.file, frame.line) if frame else None,
            stack=task.frames,
            user_frame_index=index,
            cwd=self.cwd,
            task=task.name,
            task_id=task.id,
            waits_on=task.waits_on,
            waiting_s=task.waiting_s,
            request=task.request,
            **extra,  # type: ignore[arg-type]
        )

    def stuck(self, task: Task) -> bool:
        return task.waiting_s is not None and task.waiting_s >= self.stuck_after

    # ---- the causes ------------------------------------------------------------------

    def deadlock(self, cycle: list[Task]) -> Finding:
        """Task i waits for what task i+1 holds; the last waits for what the first holds."""
        first = cycle[0]
        parts: list[str] = []
        holders: list[Holder] = []
        for i, task in enumerate(cycle):
            nxt = cycle[(i + 1) % len(cycle)]
            key = task.waits_on.key if task.waits_on else None
            at, _ = self.where(task)
            wanted = task.waits_on.describe() if task.waits_on else "another task"
            took = self.held_where(nxt, key)
            how = f" (taken at {self.show(took)})" if took is not None else ""
            if nxt is task:
                parts.append(
                    f"task `{task.name}` waits for {wanted} at {self.show(at)}, which it "
                    f"holds itself{how}: a lock that is not re-entrant never gives way"
                )
            else:
                parts.append(
                    f"task `{task.name}` waits for {wanted} at {self.show(at)}, held by "
                    f"`{nxt.name}`{how}"
                )
            holders.append(self.holder(nxt, key))
        message = "; ".join(parts) + ": none of them can go on."
        return self.finding(
            "HD601",
            first,
            message[0].upper() + message[1:],
            holders=tuple(holders),
            cycle=tuple(t.name for t in cycle),
        )

    def shutdown(self, tasks: Sequence[Task]) -> list[Finding]:
        waiting = [t for t in tasks if t.waits_on and t.waits_on.kind is _SHUTDOWN]
        if not waiting:
            return []
        main = waiting[0]
        serving = [t for t in tasks if t.id != main.id and _serves_a_client(t)]
        # one client, one entry: a request task that awaits its stream's task is that stream
        parents = {p for t in serving for p in t.awaited_by}
        others = [t for t in serving if t.id not in parents]
        holders = [self.holder(t, None) for t in others]
        what = main.waits_on.type if main.waits_on else "the shutdown"
        if what == "the default executor":
            message = (
                "The program is ending: asyncio.run() waits for the default executor's "
                "threads to finish (`run_in_executor(None, ...)` or `to_thread` jobs still "
                "running; their stacks are the threads of this process)."
            )
            return [self.finding("HD606", main, message)]
        names = ", ".join(
            f"`{t.name}`"
            + (f" ({t.request.method} {t.request.route or t.request.path})" if t.request else "")
            + (f" at {self.show(self.where(t)[0])}" if self.where(t)[0] else "")
            for t in others[:5]
        )
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        message = f"The server is shutting down: {what} waits for " + (
            f"{len(others)} task(s) still running: {names}{more}." if others else "work."
        )
        return [self.finding("HD606", main, message, holders=tuple(holders))]

    def exhausted(self, tasks: Sequence[Task]) -> list[Finding]:
        groups: dict[tuple[WaitKind, str], list[Task]] = defaultdict(list)
        for t in tasks:
            w = t.waits_on
            if w is None or w.kind not in _EXHAUSTIBLE:
                continue
            groups[(w.kind, w.key or f"{w.type}:{w.name}")].append(t)
        out: list[Finding] = []
        for (kind, _key), waiters in groups.items():
            stuck = [t for t in waiters if self.stuck(t)]
            if not stuck:
                continue
            first = max(stuck, key=lambda t: t.waiting_s or 0.0)
            w = first.waits_on
            assert w is not None
            held = self.holders_of(w.key)
            holders = [self.holder(t, w.key) for t in held]
            size = ""
            if w.capacity is not None:
                size = f" ({w.in_use if w.in_use is not None else '?'} of {w.capacity} in use)"
            elif held:
                size = f" ({len(held)} held)"
            who = "task waits" if len(waiters) == 1 else "tasks wait"
            by = ""
            if held:
                places = sorted({h.waits_at or "?" for h in holders})
                by = f"; held by {len(held)} task(s) that have not returned, at " + ", ".join(
                    places[:3]
                )
            code = "HD602" if kind is WaitKind.POOL else "HD604"
            thing = "a connection from " + w.describe() if code == "HD602" else w.describe()
            at = self.show(self.where(first)[0])
            message = (
                f"{len(waiters)} {who} for {thing}{size} at {at}, "
                f"the longest for {age(first.waiting_s)}{by}."
            )
            out.append(
                self.finding(
                    code, first, message, holders=tuple(holders), tasks_waiting=len(waiters)
                )
            )
        return out

    def lost_wakeups(self, tasks: Sequence[Task]) -> list[Finding]:
        out: list[Finding] = []
        stuck_after = self.stuck_after
        awaiting = {by for task in self.tasks for by in task.awaited_by}  # they await a task
        for t in tasks:
            w = t.waits_on
            if w is None or t.waiting_s is None or not t.waiting_s >= stuck_after:
                continue  # not stuck(t), without a call for each of the many tasks
            if _first_user(t) is None or _waits_for_lifespan(t):
                continue  # a server's own machinery (its lifespan queue) waits by design
            body = w.kind is WaitKind.RECEIVE and w.type == _BODY
            if w.kind not in _WAKEUPS and not body:
                continue
            if w.kind in (WaitKind.TASK, WaitKind.FUTURE) and not w.detail and t.id in awaiting:
                continue  # waiting for a task that runs on (a shield's): the wait is that task's
            if w.kind is WaitKind.TASK and not w.detail:
                continue  # waiting for a task that runs on: the wait is that task's
            why = w.detail or f"nothing has set it in {age(t.waiting_s)}"
            if body:
                why = (
                    w.detail
                    or f"no part of the body arrived in {age(t.waiting_s)}: read once already "
                    "(by a middleware?), or the client never sends it"
                )
            req = f" ({t.request.method} {t.request.route or t.request.path})" if t.request else ""
            message = (
                f"Task `{t.name}`{req} waits on {w.describe()} at "
                f"{self.show(self.where(t)[0])}: {why}."
            )
            out.append(self.finding("HD603", t, message))
        return out

    def after_disconnect(self, tasks: Sequence[Task]) -> list[Finding]:
        out: list[Finding] = []
        for t in tasks:
            req = t.request
            if req is None or not req.disconnected:
                continue
            gone = req.disconnected_s
            if self.stuck(t):
                w = t.waits_on.describe() if t.waits_on else "its next step"
                goes_on = f"{age(t.waiting_s)} after its client left, waiting on {w}"
            elif gone is not None and gone >= self.stuck_after:
                # it keeps moving: each await ends, and what it sends the server drops
                goes_on = (
                    f"{age(gone)} after its client left and still sends (the server drops "
                    "every write: nothing tells the generator), now"
                )
            else:
                continue
            held = ", ".join(h.name or h.kind.value for h in t.holds[:3])
            holding = f", still holding {held}" if held else ""
            message = (
                f"The response to {req.method} {req.route or req.path} goes on {goes_on} at "
                f"{self.show(self.where(t)[0])}{holding}."
            )
            out.append(self.finding("HD605", t, message))
        return out
