"""The in-process task source: every task of a loop, what it waits on and what it holds.

Suspended coroutines live only on the heap, so no thread stack shows why a
request waits on a healthy loop. Inside the process they can be read on the
loop's own thread, between callbacks, where nothing moves under the reader:

- the await chain, by following each coroutine's `cr_await` (and an async
  generator a `StreamingResponse` iterates, which `async for` hides behind an
  `asend` object: found among the awaiting frame's locals);
- what the innermost await waits on, as the object itself: the `self` of the
  library frame the catalog's wait patterns name (`Lock.acquire` -> that lock),
  or the future the task is parked on; its identity links waiters to holders,
  and its own counters say how full it is (a semaphore's tokens, a pool's
  connections);
- what each task holds: the `async with` items around its frames' lines
  (`analysis.lexical`), looked up in the frame without calling anything, and
  the borrowers anyio records itself (a CapacityLimiter's, a Lock's owner);
- the request a task serves, from the middleware (`inflight`).

`TaskTracker` adds time: it remembers, per task, since when its await has not
changed — the same frames *and the same awaited future*, so a stream that keeps
yielding (a new future each time) is progressing, however alike its stacks look.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import linecache
import sys
import threading
import time
import types
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hangdoctor.analysis.frames import is_user_frame
from hangdoctor.analysis.lexical import Held, held_at
from hangdoctor.analysis.tasks import classify_wait
from hangdoctor.model import Frame, Task, WaitKind, WaitsOn
from hangdoctor.runtime import inflight

__all__ = ["TaskTracker", "snapshot_tasks"]

_WAIT_FOR_CODE = asyncio.wait_for.__code__

_MAX_CHAIN = 128  # coroutines of one await chain
_MAX_TASKS = 20_000  # a loop with more is summarised by the first ones read

# the type of an object a task waits on or holds, as the user knows it
_TYPES: dict[str, tuple[WaitKind, str]] = {
    "asyncio.locks.Lock": (WaitKind.LOCK, "asyncio.Lock"),
    "asyncio.locks.Semaphore": (WaitKind.SEMAPHORE, "asyncio.Semaphore"),
    "asyncio.locks.BoundedSemaphore": (WaitKind.SEMAPHORE, "asyncio.BoundedSemaphore"),
    "asyncio.locks.Event": (WaitKind.EVENT, "asyncio.Event"),
    "asyncio.locks.Condition": (WaitKind.CONDITION, "asyncio.Condition"),
    "asyncio.queues.Queue": (WaitKind.QUEUE, "asyncio.Queue"),
    "asyncio.queues.LifoQueue": (WaitKind.QUEUE, "asyncio.LifoQueue"),
    "asyncio.queues.PriorityQueue": (WaitKind.QUEUE, "asyncio.PriorityQueue"),
    "anyio._backends._asyncio.Lock": (WaitKind.LOCK, "anyio.Lock"),
    "anyio._backends._asyncio.Semaphore": (WaitKind.SEMAPHORE, "anyio.Semaphore"),
    "anyio._backends._asyncio.CapacityLimiter": (WaitKind.LIMITER, "anyio.CapacityLimiter"),
    "anyio._backends._asyncio.Event": (WaitKind.EVENT, "anyio.Event"),
    "anyio._core._synchronization.Lock": (WaitKind.LOCK, "anyio.Lock"),
    "anyio._core._synchronization.Semaphore": (WaitKind.SEMAPHORE, "anyio.Semaphore"),
    "anyio._core._synchronization.CapacityLimiter": (WaitKind.LIMITER, "anyio.CapacityLimiter"),
    "anyio._core._synchronization.Event": (WaitKind.EVENT, "anyio.Event"),
    "anyio.streams.memory.MemoryObjectReceiveStream": (
        WaitKind.STREAM,
        "anyio memory object stream",
    ),
    "anyio.streams.memory.MemoryObjectSendStream": (WaitKind.STREAM, "anyio memory object stream"),
    "httpcore._async.connection_pool.AsyncConnectionPool": (
        WaitKind.POOL,
        "httpcore.AsyncConnectionPool",
    ),
    "aiohttp.connector.TCPConnector": (WaitKind.POOL, "aiohttp.TCPConnector"),
    "sqlalchemy.pool.impl.AsyncAdaptedQueuePool": (WaitKind.POOL, "SQLAlchemy pool"),
    "sqlalchemy.pool.impl.QueuePool": (WaitKind.POOL, "SQLAlchemy pool"),
    "asyncio.futures.Future": (WaitKind.FUTURE, "asyncio.Future"),
    "_asyncio.Future": (WaitKind.FUTURE, "asyncio.Future"),
}


@dataclass
class _Seen:
    """What the tracker knows of one task between snapshots."""

    key: tuple[Any, ...]
    since: float  # time.monotonic() when its await was first seen as it is now


class TaskTracker:
    """Snapshots of one loop's tasks with `waiting_s`: how long each await has not changed.

    Call `snapshot()` on the loop's thread (from a callback). Tasks that ended
    are forgotten at the next call.
    """

    def __init__(self) -> None:
        self._seen: dict[int, _Seen] = {}
        self._reads: dict[int, _Read] = {}  # the last full look, reused for unmoved tasks
        self._tasks: list[asyncio.Task[Any]] = []  # the tasks the last `waits()` went over

    def waits(self, loop: asyncio.AbstractEventLoop | None = None) -> dict[int, float]:
        """How long each task's await has not changed, by task id: the cheap part, no locals."""
        now = time.monotonic()
        seen = self._seen
        current: dict[int, _Seen] = {}
        waits: dict[int, float] = {}
        # a `since` is the `now` of the pass that first saw the await: a few values for
        # all the tasks, each rounded once (round() to 3 digits costs ten dict lookups)
        ages: dict[float, float] = {}
        self._tasks = _tasks(loop)  # a look right after (on the same callback) reuses them
        for task in self._tasks:
            tid = id(task)
            key = _await_key(task)
            before = seen.get(tid)
            if before is None or key is None or before.key is not key:
                before = _Seen(key, now)
            current[tid] = before
            age = ages.get(before.since)
            if age is None:
                age = ages[before.since] = round(now - before.since, 3)
            waits[tid] = age
        self._seen = current
        return waits

    def snapshot(self, loop: asyncio.AbstractEventLoop | None = None) -> tuple[Task, ...]:
        """Every task of the loop, `waiting_s` filled in (0 for a task first seen now).

        A task still parked on the future it was parked on at the last look has not
        moved: its chain, what it waits on and what it holds are taken from that look
        (the objects' counters and its request are read again), so a look at a loop of
        idle tasks costs little more than the cheap pass.
        """
        return self.look(loop, self.waits(loop))

    def look(
        self, loop: asyncio.AbstractEventLoop | None, waiting: dict[int, float]
    ) -> tuple[Task, ...]:
        """The full look with `waiting` from a `waits()` just taken (see `snapshot`)."""
        tasks, self._reads = _snapshot(loop, waiting, self._reads, self._tasks)
        return tasks


def snapshot_tasks(
    loop: asyncio.AbstractEventLoop | None = None, *, waiting: dict[int, float] | None = None
) -> tuple[Task, ...]:
    """Every pending task of `loop` (the running one by default): chain, waits, holds, request.

    `waiting` gives each task's `waiting_s`, by task id (`TaskTracker.waits()`).

    Run it on the loop's thread: the coroutines must not move while they are read.
    """
    return _snapshot(loop, waiting or {}, {})[0]


def _snapshot(
    loop: asyncio.AbstractEventLoop | None,
    waiting: dict[int, float],
    previous: dict[int, _Read],
    tasks: list[asyncio.Task[Any]] | None = None,
) -> tuple[tuple[Task, ...], dict[int, _Read]]:
    if tasks is None:
        tasks = _tasks(loop)
    loop_tid = threading.get_native_id()  # run on the loop's own thread
    by_id = {id(t): t for t in tasks}
    awaited_by: dict[int, list[int]] = {}
    extra_holds: dict[int, list[WaitsOn]] = {}
    reads: dict[int, _Read] = {}
    memo = _Memo()
    owned = memo.owned
    now = time.monotonic()
    for task in tasks:
        tid = id(task)
        read = previous.get(tid)
        waiter = getattr(task, "_fut_waiter", None)
        if read is not None and read.task is task and waiter is not None and waiter is read.waiter:
            read.refresh(memo, now)
        else:
            read = _read(task, memo)
        reads[tid] = read
        if (
            isinstance(waiter, asyncio.Task)
            or getattr(waiter, "_children", None)
            # a shield's future: its own callback and the awaiting task's
            or len(getattr(waiter, "_callbacks", None) or ()) > 1
        ):
            for child in _awaited_tasks(waiter):
                awaited_by.setdefault(id(child), []).append(tid)
        waited = read.waited
        if waited is not None and read.waits_on is not None:
            owners = owned.get(id(waited))
            if owners is None:
                owners = memo.owners(waited)
            for owner in owners:
                if id(owner) in by_id:
                    extra_holds.setdefault(id(owner), []).append(read.waits_on)
    for read, held in _pool_holders(list(reads.values())):
        extra_holds.setdefault(id(read.task), []).append(held)
    out: list[Task] = []
    for tid, read in reads.items():
        extra = extra_holds.get(tid)
        holds: tuple[WaitsOn, ...] = ()
        if read.holds or extra:
            holds = _unique(tuple(h for _, h in read.holds) + tuple(extra or ()))
        parents = awaited_by.get(tid)
        awaiting = tuple(parents) if parents else ()
        name = read.task.get_name()
        made = read.made
        basis = (name, read.waits_on, read.request, holds, awaiting, loop_tid)
        if made is not None and basis == read.basis:
            # a task that has not moved is the Task of the last look but for its age:
            # copied rather than made anew, which (frozen, eleven fields) costs 4x more
            made = _aged(made, waiting.get(tid))
        else:
            made = Task(
                id=tid,
                name=name,
                frames=read.frames,
                waits_on=read.waits_on,
                holds=holds,
                awaited_by=awaiting,
                request=read.request,
                waiting_s=waiting.get(tid),
                loop_tid=loop_tid,
            )
            read.basis = basis
        read.made = made
        out.append(made)
    return tuple(out), reads


_NEW = object.__new__
_SET = object.__setattr__


def _aged(task: Task, waiting_s: float | None) -> Task:
    """`task` with `waiting_s` set: `replace(task, waiting_s=...)` at a fraction of its cost."""
    if task.waiting_s == waiting_s:
        return task
    fields = task.__dict__.copy()
    fields["waiting_s"] = waiting_s
    aged: Task = _NEW(Task)
    _SET(aged, "__dict__", fields)
    return aged


def _tasks(loop: asyncio.AbstractEventLoop | None) -> list[asyncio.Task[Any]]:
    for _ in range(3):
        try:
            found = asyncio.all_tasks(loop)
            break
        except RuntimeError:  # the set changed during iteration (another thread's loop)
            continue
    else:
        return []
    return [t for t in found if not t.done()][:_MAX_TASKS]


def _chain(task: asyncio.Task[Any]) -> list[types.FrameType]:
    """The frames of the task's await chain, outermost first."""
    frames: list[types.FrameType] = []
    try:
        awaitable: Any = task.get_coro()
    except Exception:
        return frames
    for _ in range(_MAX_CHAIN):
        frame = (
            getattr(awaitable, "cr_frame", None)
            or getattr(awaitable, "ag_frame", None)
            or getattr(awaitable, "gi_frame", None)
        )
        if frame is None:
            break
        frames.append(frame)
        nxt = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "ag_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
        )
        if nxt is not None and type(nxt).__name__ == "async_generator_asend":
            nxt = _running_generator(frame)  # `async for` hides the generator it drives
        elif frame.f_code is _WAIT_FOR_CODE:
            # before 3.12, wait_for runs what it waits for in a task of its own and parks
            # on a future: go on into that task, as 3.12+ (which awaits it directly) shows
            inner = _locals(frame).get("fut")
            if isinstance(inner, asyncio.Task) and not inner.done():
                nxt = inner.get_coro()
        if nxt is None:
            break
        awaitable = nxt
    return frames


def _running_generator(frame: types.FrameType) -> Any:
    """The async generator an `async for` in `frame` is driving, found among its locals."""
    values = list(_locals(frame).values())
    owner = _locals(frame).get("self")
    if owner is not None:
        values.extend(_attributes(owner))
    for value in values:
        if isinstance(value, types.AsyncGeneratorType) and value.ag_running:
            return value
    return None


def _attributes(obj: object) -> list[Any]:
    try:
        return list(vars(obj).values())
    except TypeError:
        return []


def _locals(frame: types.FrameType) -> dict[str, Any]:
    # 3.13+ gives a read-only view; 3.10-3.12 copy the fast locals into a dict, which is
    # safe for a suspended frame on its own loop's thread
    try:
        return dict(frame.f_locals)
    except Exception:
        return {}


def _await_key(task: asyncio.Task[Any]) -> Any:
    """What the task waits on now: the very future it is parked on (None: it runs, or will).

    The future itself, not its id: a new future may be allocated where the last one
    was, and a long poll woken every few milliseconds would look parked for ever.
    Holding it until the next check costs nothing: the task holds it anyway. A task
    runs only once that future is done, and a done future cannot park it again, so
    while it is the same, neither the task's frames nor their lines have moved; its
    chain need not be read (the cheap pass stays cheap).
    """
    return getattr(task, "_fut_waiter", None)


def _awaited_tasks(waiter: Any) -> Iterable[asyncio.Future[Any]]:
    """Tasks a task parked on `waiter` waits for: the one it awaits, a gather's children,
    the task an `asyncio.shield` future stands for."""
    if isinstance(waiter, asyncio.Task):
        return [waiter]
    found: list[asyncio.Future[Any]] = []
    children = getattr(waiter, "_children", None)  # asyncio.gather
    if children:
        found.extend(child for child in children if isinstance(child, asyncio.Task))
    for callback in getattr(waiter, "_callbacks", None) or ():
        # shield() returns a bare future whose done-callback closes over the inner task:
        # it is set when that task ends, so the wait is that task's, not a lost wake-up
        function = callback[0] if isinstance(callback, tuple) else callback
        if getattr(function, "__name__", None) == "_outer_done_callback":
            for cell in getattr(function, "__closure__", None) or ():
                try:
                    inner = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if isinstance(inner, asyncio.Task):
                    found.append(inner)
    return found


@dataclass
class _Read:
    task: asyncio.Task[Any]
    raw: list[types.FrameType]  # innermost first
    frames: tuple[Frame, ...]
    waits_on: WaitsOn | None
    waited: Any  # the object waited on
    holds: list[tuple[Any, WaitsOn]]  # each object held, and how it was seen
    request: Any
    waiter: Any = None  # the future the task was parked on when read
    inflight: Any = None  # the middleware's request object, read again for its age
    made: Task | None = None  # the Task the last look made of this read
    basis: tuple[Any, ...] = ()  # what `made` was made of, but its age

    def refresh(self, memo: _Memo, now: float) -> None:
        """Read again what changes while the task stays parked: counters, its request.

        Only for a task still parked on `waiter`: its frames and lines have not moved.
        """
        if self.waits_on is not None and self.waited is not None:
            self.waits_on = memo.again(self.waited, self.waits_on)
        if self.holds:
            self.holds = [(obj, memo.again(obj, held)) for obj, held in self.holds]
        if self.inflight is not None and not self.inflight.ended:
            self.request = self.inflight.info(now)


class _Memo:
    """What one snapshot has already worked out: thousands of tasks share a few objects.

    A describe of an object (its type, identity and counters) and the name a place in
    the code gives it are the same for every task parked there: done once per snapshot.
    """

    def __init__(self) -> None:
        self.described: dict[tuple[int, WaitKind, str | None], WaitsOn | None] = {}
        self.named: dict[tuple[int, int, int], str | None] = {}
        self.refreshed: dict[tuple[int, WaitsOn], WaitsOn] = {}
        # per object: the kind and type it was counted as, and its counters
        self.counted: dict[int, tuple[WaitKind, str | None, tuple[Any, Any, Any] | None]] = {}
        self.owned: dict[int, list[Any]] = {}
        self.renamed: dict[tuple[int, str, str | None], tuple[WaitsOn, WaitsOn]] = {}
        self.keep: list[Any] = []  # the objects behind the ids, alive while the memo is

    def describe(self, obj: Any, kind: WaitKind, type_: str | None) -> WaitsOn | None:
        key = (id(obj), kind, type_)
        if key not in self.described:
            self.keep.append(obj)
            self.described[key] = _describe(obj, kind, type_)
        return self.described[key]

    def again(self, obj: Any, before: WaitsOn) -> WaitsOn:
        """`before` with `obj`'s counters read afresh; one object per snapshot for all alike.

        `before` itself while the counters are the same: comparing three numbers costs
        less than looking a WaitsOn up by its value, and tasks first read at different
        looks each have their own `before`.
        """
        kind, type_ = before.kind, before.type
        counted = self.counted.get(id(obj))
        if counted is None or counted[0] is not kind or counted[1] != type_:
            fresh = self.describe(obj, kind, type_)
            counts = None if fresh is None else (fresh.capacity, fresh.in_use, fresh.waiters)
            counted = self.counted[id(obj)] = (kind, type_, counts)
        counts = counted[2]
        if counts is None or counts == (before.capacity, before.in_use, before.waiters):
            return before
        key = (id(obj), before)
        found = self.refreshed.get(key)
        if found is None:
            capacity, in_use, waiters = counts
            found = replace(before, capacity=capacity, in_use=in_use, waiters=waiters)
            self.refreshed[key] = found
        return found

    def named_as(self, base: WaitsOn, name: str, created_at: str | None) -> WaitsOn:
        """`base` named as a place names it: one copy for all the tasks waiting there."""
        key = (id(base), name, created_at)
        hit = self.renamed.get(key)
        if hit is None:  # `base` kept in the entry: no other object takes its id meanwhile
            hit = self.renamed[key] = (base, replace(base, name=name, created_at=created_at))
        return hit[1]

    def owners(self, obj: Any) -> list[Any]:
        """The tasks `obj` records as its owners (`_recorded_owners`), once per object."""
        found = self.owned.get(id(obj))
        if found is None:
            self.keep.append(obj)
            found = self.owned[id(obj)] = _recorded_owners(obj)
        return found

    def name(self, raw: list[types.FrameType], obj: Any, user_at: int) -> str | None:
        """How the user's code names `obj` (`_name_in`); `user_at`: its first frame, or -1."""
        if user_at < 0 or obj is None:
            return None
        user = raw[user_at]
        key = (id(obj), id(user.f_code), user.f_lineno or 0)
        if key not in self.named:
            self.keep.append(obj)
            self.named[key] = _name_in(raw, obj)
        return self.named[key]


def _read(task: asyncio.Task[Any], memo: _Memo | None = None) -> _Read:
    memo = memo or _Memo()
    raw = list(reversed(_chain(task)))  # innermost first
    place = _place(raw)
    frames = place.frames
    pattern, index = place.pattern, place.index
    waited: Any = None
    waits: WaitsOn | None = None
    if pattern is not None and index >= 0:
        waited = _subject(raw, index, pattern.kind)
        waits = memo.describe(waited, pattern.kind, pattern.type) if waited is not None else None
        if waits is None:
            waits = WaitsOn(kind=pattern.kind, type=pattern.type)
    else:
        fut = getattr(task, "_fut_waiter", None)
        # a future awaited by the user's own line; a library's unknown wait is left unnamed
        if fut is not None and raw and is_user_frame(frames[0]):
            kind, type_ = WaitKind.FUTURE, None
            if isinstance(fut, asyncio.Task):
                kind, type_ = WaitKind.TASK, "asyncio.Task"
            elif getattr(fut, "_children", None) is not None:
                kind, type_ = WaitKind.TASK, "asyncio.gather"
            waited = fut
            waits = memo.describe(fut, kind, type_)
            if waits is not None and kind is WaitKind.FUTURE and raw:
                dead = _dead_resolver(raw[0])
                if dead:
                    waits = replace(waits, detail=dead)
    if waits is not None and raw and waits.name is None:
        name = memo.name(raw, waited, place.user)
        if name is not None:
            waits = memo.named_as(waits, name, waits.created_at)
    req = inflight._request_of_suspended(task)
    return _Read(
        task=task,
        raw=raw,
        frames=frames,
        waits_on=waits,
        waited=waited,
        holds=_holds(raw, place, memo),
        request=None if req is None else req.info(time.monotonic()),
        waiter=getattr(task, "_fut_waiter", None),
        inflight=req,
    )


# Caches by code object (and line): a server's tasks wait at the same few places, and
# what a place means does not change. Keyed by id; each value keeps its code object alive,
# so no other code object can take that id while the entry exists. Cleared when full.
_CACHED = 8192
_FRAMES: dict[tuple[int, int], tuple[types.CodeType, Frame]] = {}
_LIBRARY: dict[int, tuple[types.CodeType, bool]] = {}
_CLASSIFIED: dict[tuple[int, ...], tuple[tuple[types.CodeType, ...], Any, int]] = {}
_HELD: dict[tuple[int, int], tuple[types.CodeType, list[Held]]] = {}


@dataclass(frozen=True)
class _Place:
    """What a chain of places (code, line) means, for every task whose chain it is."""

    codes: tuple[types.CodeType, ...]  # alive while the entry is: the key holds their ids
    frames: tuple[Frame, ...]
    pattern: Any  # `classify_wait`'s, and its frame index
    index: int
    user: int  # the first frame of the user's code (not a library's), -1: none
    held: tuple[tuple[int, Held, str], ...]  # user frame index, item, "file:line"


_PLACES: dict[tuple[tuple[int, ...], tuple[int, ...]], _Place] = {}


def _place(raw: list[types.FrameType]) -> _Place:
    """The meaning of `raw`'s places, worked out once per chain of code and lines.

    Frame by frame, each cached lookup costs little; a request's chain has a dozen
    frames and a look thousands of tasks, most of them waiting in the same few chains.
    """
    codes = tuple([f.f_code for f in raw])
    # where each frame stopped, by instruction: the same line every time, and far cheaper
    # to read than the line (worked out from the code's line table at each read)
    key = (tuple(map(id, codes)), tuple([f.f_lasti for f in raw]))
    hit = _PLACES.get(key)
    if hit is not None:
        return hit
    frames = tuple(_frame(f) for f in raw)
    pattern, index = _classify(raw, frames)
    library = [_is_library(f) for f in raw]
    held = tuple(
        (at, item, f"{frame.f_code.co_filename}:{item.line}")
        for at, frame in enumerate(raw)
        if not library[at]
        for item in _held_at(frame)
    )
    user = library.index(False) if False in library else -1
    place = _Place(codes, frames, pattern, index, user, held)
    _remember(_PLACES, key, place)
    return place


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value


def _frame(frame: types.FrameType) -> Frame:
    code = frame.f_code
    line = frame.f_lineno or code.co_firstlineno
    hit = _FRAMES.get((id(code), line))
    if hit is not None:
        return hit[1]
    made = Frame(
        function=getattr(code, "co_qualname", code.co_name), file=code.co_filename, line=line
    )
    _remember(_FRAMES, (id(code), line), (code, made))
    return made


def _classify(raw: list[types.FrameType], frames: tuple[Frame, ...]) -> tuple[Any, int]:
    """`classify_wait` of a chain, cached by its code objects (it reads names, not lines)."""
    codes = tuple(f.f_code for f in raw)
    key = tuple(map(id, codes))
    hit = _CLASSIFIED.get(key)
    if hit is not None:
        return hit[1], hit[2]
    pattern, index = classify_wait(frames)
    _remember(_CLASSIFIED, key, (codes, pattern, index))
    return pattern, index


def _subject(raw: list[types.FrameType], index: int, kind: WaitKind) -> Any:
    """The object a library wait frame works on: its `self`, or a pool further out."""
    if kind is WaitKind.POOL:
        owners = [_locals(frame).get("self") for frame in raw[index:]]
        owners = [_sqlalchemy_pool(o) or o for o in owners if o is not None]
        for owner in owners:
            if owner is not None and _TYPES.get(_type_name(owner), (None,))[0] is WaitKind.POOL:
                return owner
        for owner in owners:  # a pool the table does not know by name
            if owner is not None and type(owner).__name__.endswith(("Pool", "Connector")):
                return owner
        return None
    owner = _locals(raw[index]).get("self")
    if owner is not None and _TYPES.get(_type_name(owner), (kind,))[0] is kind:
        return owner
    # a container's own frame (`to_thread.run_sync`) holds no such object: the frame of
    # the wait it re-labels, further in, does (`CapacityLimiter.acquire`)
    for frame in raw[:index]:
        inner = _locals(frame).get("self")
        if inner is not None and _TYPES.get(_type_name(inner), (None,))[0] is kind:
            return inner
    return owner


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(obj: Any, kind: WaitKind, type_: str | None) -> WaitsOn | None:
    """A WaitsOn for a live object: its identity and the counters it keeps."""
    known = _TYPES.get(_type_name(obj))
    if known is not None:
        kind, type_ = known
    capacity = in_use = waiters = None
    detail = None
    try:
        if kind is WaitKind.SEMAPHORE:
            value = getattr(obj, "_value", None)
            bound = getattr(obj, "_bound_value", None) or getattr(obj, "_max_value", None)
            waiters = len(getattr(obj, "_waiters", None) or ())
            if isinstance(bound, int) and isinstance(value, int):
                capacity, in_use = bound, bound - value
        elif kind is WaitKind.LIMITER:
            if _is_default_thread_limiter(obj):
                type_ = "AnyIO's thread limiter"
            capacity = int(getattr(obj, "_total_tokens", 0)) or None
            in_use = len(getattr(obj, "_borrowers", ()) or ())
            waiters = len(getattr(obj, "_wait_queue", ()) or ())
        elif kind is WaitKind.LOCK:
            waiters = len(getattr(obj, "_waiters", None) or ())
        elif kind is WaitKind.POOL:
            capacity, in_use, waiters = _pool_counts(obj)
        elif kind is WaitKind.STREAM:
            state = getattr(obj, "_state", None)
            senders = getattr(state, "open_send_channels", None)
            if senders == 0:
                detail = "every sending end of the stream is closed"
    except Exception:  # a library changed its internals: identity alone still links
        pass
    return WaitsOn(
        kind=kind,
        type=type_ or type(obj).__qualname__,
        key=hex(id(obj)),
        capacity=capacity,
        in_use=in_use,
        waiters=waiters,
        detail=detail,
    )


def _sqlalchemy_pool(obj: Any) -> Any:
    """The connection pool behind an SQLAlchemy AsyncSession, AsyncConnection or AsyncEngine."""
    name = type(obj).__name__
    if name not in ("AsyncSession", "AsyncConnection", "AsyncEngine"):
        return None
    try:
        if name == "AsyncSession":
            engine = obj.bind
        elif name == "AsyncConnection":
            engine = obj.engine  # its AsyncEngine
        else:
            engine = obj
        return getattr(engine, "sync_engine", engine).pool
    except Exception:
        return None


def _holds_connection(value: Any, pool: Any) -> bool:
    """Whether `value` (a local of some frame) keeps a connection of `pool` checked out."""
    name = type(value).__name__
    try:
        if name == "AsyncSession" and _sqlalchemy_pool(value) is pool:
            # a transaction begun is not a connection checked out: a session waiting for
            # its first connection has one too
            transaction = value.sync_session.get_transaction()
            return transaction is not None and bool(getattr(transaction, "_connections", None))
        if name == "AsyncConnection" and _sqlalchemy_pool(value) is pool:
            return not value.closed
        if name == "Response" and type(value).__module__.startswith("httpx"):
            # an httpx response streamed and never closed keeps its connection
            return not value.is_closed and _type_name(pool).startswith("httpcore.")
    except Exception:
        return False
    return False


def _pool_holders(reads: list[_Read]) -> list[tuple[_Read, WaitsOn]]:
    """Tasks holding a connection of a pool that others wait for: sessions, open responses.

    Read only when some task waits for a pool: it looks at the locals of every user frame.
    """
    pool = WaitKind.POOL  # read off its Enum class once, not once a task
    pools = {
        id(r.waited): (r.waited, r.waits_on)
        for r in reads
        if r.waits_on is not None and r.waits_on.kind is pool and r.waited is not None
    }
    if not pools:
        return []
    found: list[tuple[_Read, WaitsOn]] = []
    for read in reads:
        for frame in read.raw:
            if _is_library(frame):
                continue
            for name, value in _locals(frame).items():
                for pool, waits in pools.values():
                    if waits is not None and _holds_connection(value, pool):
                        # where it was opened: the `async with ... as name` around the
                        # frame's line, else where the frame is now
                        line = next(
                            (h.line for h in _held_at(frame) if h.target == name),
                            frame.f_lineno,
                        )
                        where = f"{frame.f_code.co_filename}:{line}"
                        found.append((read, replace(waits, name=name, created_at=where)))
    return found


def _is_default_thread_limiter(limiter: Any) -> bool:
    """Whether `limiter` is the one `anyio.to_thread` and Starlette's sync routes share."""
    to_thread = sys.modules.get("anyio.to_thread")
    if to_thread is None:
        return False
    try:
        return bool(to_thread.current_default_thread_limiter() is limiter)
    except Exception:  # no anyio loop state here
        return False


def _pool_counts(pool: Any) -> tuple[int | None, int | None, int | None]:
    """(connections allowed, connections busy, requests waiting) of a connection pool."""
    if hasattr(pool, "_max_connections"):  # httpcore
        conns = list(getattr(pool, "_connections", ()) or ())
        busy = sum(1 for c in conns if not _call_bool(c, "is_idle"))
        waiting = sum(1 for r in getattr(pool, "_requests", ()) or () if not _assigned(r))
        return int(pool._max_connections), busy, waiting
    if hasattr(pool, "checkedout") and hasattr(pool, "_max_overflow"):  # SQLAlchemy
        overflow = int(pool._max_overflow)
        size = int(pool.size())
        return (size + overflow if overflow >= 0 else None), int(pool.checkedout()), None
    if hasattr(pool, "_limit"):  # aiohttp
        acquired = len(getattr(pool, "_acquired", ()) or ())
        waiters = getattr(pool, "_waiters", None)
        count = sum(len(v) for v in waiters.values()) if isinstance(waiters, dict) else None
        return int(pool._limit) or None, acquired, count
    return None, None, None


def _assigned(request: Any) -> bool:
    return getattr(request, "connection", None) is not None


def _call_bool(obj: Any, name: str) -> bool:
    try:
        return bool(getattr(obj, name)())
    except Exception:
        return False


def _dead_resolver(frame: types.FrameType) -> str | None:
    """A task kept on the waiting frame's `self` that ended: nothing will resolve the future."""
    owner = _locals(frame).get("self")
    if owner is None:
        return None
    for name, value in _named_attributes(owner):
        if isinstance(value, asyncio.Task) and value.done():
            if value.cancelled():
                return f"its task `{name}` ({value.get_name()}) was cancelled"
            exc = value.exception()
            if exc is not None:
                return f"its task `{name}` ({value.get_name()}) ended with {exc!r}"
            return f"its task `{name}` ({value.get_name()}) has ended"
    return None


def _named_attributes(obj: object) -> list[tuple[str, Any]]:
    try:
        return list(vars(obj).items())
    except TypeError:
        return []


def _name_in(raw: list[types.FrameType], obj: Any) -> str | None:
    """How the user's frame names `obj`: a local, a global, or an attribute of `self`."""
    if obj is None:
        return None
    for frame in raw:
        if frame.f_code.co_filename.startswith("<") or _is_library(frame):
            continue
        local = _locals(frame)
        for name, value in local.items():
            if value is obj or _unwrap(value) is obj:
                return name
        owner = local.get("self")
        if owner is not None:
            for name, value in _named_attributes(owner):
                if value is obj or _unwrap(value) is obj:
                    return f"self.{name}"
        for name, value in frame.f_globals.items():
            if value is obj or _unwrap(value) is obj:
                return name
        return None
    return None


# anyio's primitives made before a loop runs (at import: `lock = anyio.Lock()` at module
# level) are adapters that make the backend's own object on first use; the waits are on
# that object, the code names the adapter
_ADAPTED = ("_internal_lock", "_internal_semaphore", "_internal_event", "_internal_limiter")


def _unwrap(value: Any) -> Any:
    """The backend object an anyio adapter stands for (made on first use); else `value`."""
    if value is None or not type(value).__name__.endswith("Adapter"):
        return value
    for attr in _ADAPTED:
        inner = getattr(value, attr, None)
        if inner is not None:
            return inner
    return value


def _is_library(frame: types.FrameType) -> bool:
    code = frame.f_code
    hit = _LIBRARY.get(id(code))
    if hit is not None:
        return hit[1]
    library = not is_user_frame(_frame(frame))
    _remember(_LIBRARY, id(code), (code, library))
    return library


def _held_at(frame: types.FrameType) -> list[Held]:
    """The `async with` items around the frame's line (`held_at`), cached by code and line."""
    code, line = frame.f_code, frame.f_lineno or 0
    hit = _HELD.get((id(code), line))
    if hit is not None:
        return hit[1]
    tree = _tree(code.co_filename)
    found = [] if tree is None else held_at(tree, line)
    _remember(_HELD, (id(code), line), (code, found))
    return found


def _holds(raw: list[types.FrameType], place: _Place, memo: _Memo) -> list[tuple[Any, WaitsOn]]:
    """The `async with` items around each user frame's line, looked up in that frame."""
    out: list[tuple[Any, WaitsOn]] = []
    for at, held, where in place.held:
        obj = _unwrap(_lookup(raw[at], held.expr)) if held.simple else None
        if obj is None:
            continue
        described = memo.describe(obj, WaitKind.UNKNOWN, None)
        if described is not None:
            out.append((obj, memo.named_as(described, held.expr, where)))
    return out


_TREES: dict[str, tuple[int, ast.Module | None]] = {}


def _tree(filename: str) -> ast.Module | None:
    """The parsed source of `filename`, cached while linecache's copy is the same."""
    lines = linecache.getlines(filename)
    if not lines:
        return None
    stamp = hash(lines[0]) ^ len(lines)
    cached = _TREES.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    # No garbage collection while parsing: a finalizer that formats a traceback (a task's
    # "exception was never retrieved") parses source itself, and a parse nested in a parse
    # corrupts CPython 3.11's AST state for the whole process.
    enabled = gc.isenabled()
    gc.disable()
    try:
        tree: ast.Module | None = ast.parse("".join(lines))
    except (SyntaxError, ValueError, SystemError):
        tree = None
    finally:
        if enabled:
            gc.enable()
    if len(_TREES) > 512:
        _TREES.clear()
    _TREES[filename] = (stamp, tree)
    return tree


def _lookup(frame: types.FrameType, expr: str) -> Any:
    """`expr` (a name or attribute chain) in `frame`, without running properties or calls."""
    parts = expr.split(".")
    scope = _locals(frame)
    if parts[0] in scope:
        obj = scope[parts[0]]
    elif parts[0] in frame.f_globals:
        obj = frame.f_globals[parts[0]]
    else:
        return None
    for part in parts[1:]:
        try:
            value = inspect.getattr_static(obj, part)
        except AttributeError:
            return None
        if isinstance(value, (property, types.MemberDescriptorType, types.GetSetDescriptorType)):
            return None
        obj = value
    return obj


def _recorded_owners(waited: Any) -> list[Any]:
    """Owners a library records itself: anyio's lock owner and limiter borrowers."""
    out: list[Any] = []
    owner = getattr(waited, "_owner_task", None)
    if owner is not None:
        out.append(owner)
    out.extend(getattr(waited, "_borrowers", ()) or ())
    return out


def _unique(holds: tuple[WaitsOn, ...]) -> tuple[WaitsOn, ...]:
    seen: set[str | None] = set()
    out: list[WaitsOn] = []
    for held in holds:
        if held.key in seen:
            continue
        seen.add(held.key)
        out.append(held)
    return tuple(out)
