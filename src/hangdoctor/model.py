"""The one data model every source produces and every renderer reads.

Sources (live py-spy capture, saved dumps, the in-process watchdog) build
`Snapshot`s; the analysis turns a series of snapshots of one process into a
`Diagnosis` made of `LoopReport`s and `Finding`s; renderers only read these.
Everything is frozen and round-trips through plain JSON (`to_dict`/`from_dict`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "CpuUse",
    "Diagnosis",
    "Finding",
    "Frame",
    "Holder",
    "Local",
    "LoopKind",
    "LoopReport",
    "LoopState",
    "RequestInfo",
    "Snapshot",
    "Task",
    "Thread",
    "ThreadCpu",
    "Verdict",
    "WaitKind",
    "WaitTarget",
    "WaitsOn",
]


class LoopState(str, enum.Enum):
    """What one event loop was doing over the samples."""

    IDLE = "idle"  # waiting in the selector: healthy
    BLOCKED = "blocked"  # inside one callback, the same blocking leaf every sample
    BUSY = "busy"  # inside callbacks, different Python frames each sample: CPU work
    STARVED = "starved"  # loop idle, but every AnyIO worker thread is busy
    # the loop answers, but tasks wait on one another past the threshold (HD6xx)
    STUCK = "stuck"


class Verdict(str, enum.Enum):
    """The worst state over all loops of all processes looked at."""

    HEALTHY = "healthy"
    BUSY = "busy"
    STARVED = "starved"
    STUCK = "stuck"
    BLOCKED = "blocked"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def from_state(cls, state: LoopState) -> Verdict:
        return {
            LoopState.IDLE: cls.HEALTHY,
            LoopState.BUSY: cls.BUSY,
            LoopState.STARVED: cls.STARVED,
            LoopState.STUCK: cls.STUCK,
            LoopState.BLOCKED: cls.BLOCKED,
        }[state]


# a blocked loop stops every request; stuck tasks stop the requests that wait on them
_SEVERITY = {
    Verdict.HEALTHY: 0,
    Verdict.BUSY: 1,
    Verdict.STARVED: 2,
    Verdict.STUCK: 3,
    Verdict.BLOCKED: 4,
}


class LoopKind(str, enum.Enum):
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"  # no Python loop frames: coroutines sit right on the runner


@dataclass(frozen=True)
class Local:
    """One local variable of a frame, as py-spy `--locals` reports it."""

    name: str
    repr: str | None = None
    addr: int | None = None  # object address: links a joined Thread to its worker
    is_arg: bool = False


@dataclass(frozen=True)
class Frame:
    """One Python frame. `file` is the path as the target process sees it."""

    function: str  # qualified as py-spy prints it: "Thread.join", "f.<locals>.gen"
    file: str
    line: int
    short_file: str | None = None  # "concurrent/futures/thread.py"
    module: str | None = None
    locals: tuple[Local, ...] = ()

    @property
    def display_file(self) -> str:
        return self.short_file or self.file


@dataclass(frozen=True)
class ThreadCpu:
    """A thread's scheduler counters at one moment (`/proc/PID/task/TID/schedstat`).

    Cumulative since the thread started: only the difference between two reads
    means something. Time spent runnable but waiting for a CPU is kept apart from
    time on a CPU because a thread on a loaded machine (or under a CPU limit) gets
    only a share of the CPU it wants: what it wanted is on-CPU plus waiting.
    """

    on_cpu_s: float  # seconds run on a CPU (schedstat field 1)
    # seconds runnable, waiting on a run queue for a CPU (field 2); the kernel adds a wait
    # when it ends, so a wait still going on is not in it yet: `runs` and `state` tell that
    waiting_s: float
    at_s: float  # when it was read: time.monotonic() of the reader (one clock per machine)
    runs: int = 0  # times it got a CPU (field 3)
    state: str | None = None  # R (running or runnable), S, D, T... from /proc/PID/task/TID/stat


@dataclass(frozen=True)
class CpuUse:
    """What one thread did with the CPU between two reads of its `ThreadCpu`."""

    on_cpu_s: float
    waiting_s: float
    wall_s: float


@dataclass(frozen=True)
class Thread:
    """One thread of a snapshot; `frames` are innermost first, as py-spy prints them."""

    tid: int  # OS thread id (the LWP); 0 when a source does not know it
    name: str | None
    frames: tuple[Frame, ...]
    ident: int | None = None  # Python's threading.get_ident()
    active: bool | None = None  # py-spy's flag: informational, never used to decide blocked
    owns_gil: bool | None = None
    cpu: ThreadCpu | None = None  # scheduler counters read with the sample, where readable


@dataclass(frozen=True)
class Snapshot:
    """One capture of one process at one moment."""

    pid: int
    taken_at: float | None  # seconds since the epoch; None when a saved dump has no clock
    threads: tuple[Thread, ...]
    source: str = "py-spy"  # py-spy, py-spy-text, faulthandler, pystack, watchdog
    python_version: str | None = None
    command: str | None = None
    root: str | None = None  # where the target's files are readable: "/proc/PID/root"
    duration_s: float | None = None  # how long taking the sample paused the target
    cwd: str | None = None  # the target's working directory: shows paths relative to it
    tasks: tuple[Task, ...] = ()
    # who saw the tasks: "runtime" (in-process), "remote" (CPython 3.14's remote debugging);
    # None: this source cannot see tasks, so an empty `tasks` says nothing
    tasks_source: str | None = None


@dataclass(frozen=True)
class WaitTarget:
    """What a blocked loop waits for: usually a worker thread and where it is."""

    description: str
    thread_name: str | None = None
    tid: int | None = None
    function: str | None = None
    file: str | None = None
    line: int | None = None
    source: str | None = None  # the source line the worker sits on


@dataclass(frozen=True)
class RequestInfo:
    """The request a task serves, as the ASGI middleware saw it.

    No query string, headers or body: a report may be logged, scraped or shown on
    a debug page, and those often carry tokens.
    """

    method: str
    path: str
    route: str | None = None  # the route template, "/items/{id}", when the router set it
    request_id: str | None = None  # the value of the configured request-id header
    streaming: bool = False  # the response is an event stream (text/event-stream)
    disconnected: bool = False  # the client had gone when it was seen
    # how long before it was seen the client had gone, where the middleware saw it go (a
    # stream that kept sending to the dead connection: uvicorn drops those writes)
    disconnected_s: float | None = None
    age_s: float | None = None  # how long the request had been running then


class WaitKind(str, enum.Enum):
    """What a suspended task's innermost await waits on."""

    LOCK = "lock"  # asyncio.Lock, anyio.Lock
    SEMAPHORE = "semaphore"  # asyncio.(Bounded)Semaphore, anyio.Semaphore
    CONDITION = "condition"
    EVENT = "event"
    QUEUE = "queue"  # asyncio.Queue get/put
    STREAM = "stream"  # anyio memory object stream send/receive
    LIMITER = "limiter"  # anyio CapacityLimiter, the thread limiter's tokens
    POOL = "pool"  # a connection from a pool: httpcore, aiohttp, SQLAlchemy, asyncpg, redis
    TASK = "task"  # another task: await task, gather, wait, a TaskGroup
    FUTURE = "future"  # a bare Future
    THREAD = "thread"  # a job in a thread: run_in_executor, to_thread
    RECEIVE = "receive"  # the ASGI `receive` channel: the request body, the disconnect
    SHUTDOWN = "shutdown"  # the server's graceful shutdown waiting for what is still open
    SLEEP = "sleep"
    IO = "io"  # a socket read or write, a StreamReader
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class WaitsOn:
    """The thing a task waits on (or holds), and what is known about it."""

    kind: WaitKind
    name: str | None = None  # as the user's code names it: "lock_b", "self.pool"
    type: str | None = None  # "asyncio.Lock", "httpcore.AsyncConnectionPool"
    created_at: str | None = None  # "file:line" where it was made, when known
    # links the waiters and holders of one object within one process: "0x7f3a..." from
    # in-process identity, "lock:lock_b@api/locks.py" when only the source names it
    key: str | None = None
    capacity: int | None = None  # tokens of a semaphore or limiter, connections of a pool
    in_use: int | None = None
    waiters: int | None = None
    detail: str | None = None  # one phrase more: "its reader task ended with OSError(...)"

    def describe(self) -> str:
        what = self.type or self.kind.value
        return f"{what} `{self.name}`" if self.name else what


@dataclass(frozen=True)
class Holder:
    """Who holds what a task waits on, or who would set it: a task, or an open object."""

    task: str  # the task's name, or what holds it when not a task ("an open response")
    task_id: int | None = None
    file: str | None = None  # where it took the thing (or opened the connection)
    line: int | None = None
    function: str | None = None
    source: str | None = None
    since_s: float | None = None  # how long it has held it, when known
    alive: bool = True
    exception: str | None = None  # a holder or resolver task that ended with an exception
    waits_on: WaitsOn | None = None  # what the holder itself waits on: a cycle shows here
    waits_at: str | None = None  # "file:line" where the holder waits


@dataclass(frozen=True)
class Task:
    """One asyncio task of a snapshot: its await chain and what it waits on."""

    id: int
    name: str
    frames: tuple[Frame, ...]  # the await chain, innermost first
    waits_on: WaitsOn | None = None  # filled by a source that knows, else by the analysis
    holds: tuple[WaitsOn, ...] = ()  # locks in an `async with`, tokens, pool connections
    awaited_by: tuple[int, ...] = ()  # ids of the tasks that await this one
    request: RequestInfo | None = None
    waiting_s: float | None = None  # how long its await has not moved, when known
    loop_tid: int | None = None  # the thread of the loop it runs on
    done: bool = False
    exception: str | None = None  # a done task's exception, repr'd


@dataclass(frozen=True)
class Finding:
    """One cause found at one place: from a live capture, a dump or a scan."""

    code: str  # catalog code, e.g. "HD101"
    message: str  # one line, specific to this place
    file: str
    line: int
    function: str
    pid: int | None = None
    thread: str | None = None  # thread name
    tid: int | None = None
    blocked_for_s: float | None = None  # lower bound over the samples
    state: LoopState | None = None
    source: str | None = None  # the source line at file:line
    col: int | None = None  # scan findings carry a column
    waits_for: WaitTarget | None = None
    stack: tuple[Frame, ...] = ()  # the loop thread's stack, innermost first
    user_frame_index: int | None = None  # index in `stack` of the user's frame
    chain: tuple[str, ...] = ()  # scan: call chain across functions
    cwd: str | None = None  # the target's working directory: paths are shown relative to it
    # HD6xx, tasks that wait on one another: the waiting task and what it waits on
    task: str | None = None
    task_id: int | None = None
    waits_on: WaitsOn | None = None
    holders: tuple[Holder, ...] = ()
    waiting_s: float | None = None  # how long the task has waited, when known
    request: RequestInfo | None = None
    cycle: tuple[str, ...] = ()  # HD601: the tasks of the cycle, in order
    tasks_waiting: int | None = None  # how many tasks wait on the same thing
    # scan: "startup" / "shutdown" for code that runs once around serving, not on requests
    phase: str | None = None


@dataclass(frozen=True)
class LoopReport:
    """The state of one event loop thread over all samples."""

    pid: int
    tid: int
    thread: str | None
    kind: LoopKind
    state: LoopState
    blocked_for_s: float | None = None
    busy_workers: int | None = None  # AnyIO worker threads busy (starvation)
    total_workers: int | None = None
    cpu: CpuUse | None = None  # the loop thread's CPU over the samples, where measured


@dataclass(frozen=True)
class Diagnosis:
    """The analysis of one or more processes: verdict, per-loop states, findings."""

    verdict: Verdict
    loops: tuple[LoopReport, ...]
    findings: tuple[Finding, ...]
    pids: tuple[int, ...] = ()
    samples: int = 0
    sampled_for_s: float = 0.0
    notes: tuple[str, ...] = field(default=())  # things the user should know (no loop found...)
    # False only when the user asked for locals as captured (--show-secrets): reports say so
    secrets_redacted: bool = True

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(asdict(self))  # type: ignore[no-any-return]

    def without_locals(self) -> Diagnosis:
        """The same diagnosis with frame locals dropped: what is shown unless asked for."""

        def bare(stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
            return tuple(replace(f, locals=()) if f.locals else f for f in stack)

        return replace(self, findings=tuple(replace(f, stack=bare(f.stack)) for f in self.findings))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        return Diagnosis(
            verdict=Verdict(data["verdict"]),
            loops=tuple(_loop_from_dict(x) for x in data.get("loops", ())),
            findings=tuple(finding_from_dict(x) for x in data.get("findings", ())),
            pids=tuple(data.get("pids", ())),
            samples=int(data.get("samples", 0)),
            sampled_for_s=float(data.get("sampled_for_s", 0.0)),
            notes=tuple(data.get("notes", ())),
            secrets_redacted=bool(data.get("secrets_redacted", True)),
        )


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def to_dict(
    obj: Snapshot | Finding | Frame | Thread | LoopReport | Task | WaitsOn | Holder,
) -> dict[str, Any]:
    """Plain-JSON form of any model object."""
    return _to_jsonable(asdict(obj))  # type: ignore[no-any-return]


def frame_from_dict(d: dict[str, Any]) -> Frame:
    return Frame(
        function=d["function"],
        file=d["file"],
        line=int(d["line"]),
        short_file=d.get("short_file"),
        module=d.get("module"),
        locals=tuple(Local(**x) for x in d.get("locals", ())),
    )


def thread_from_dict(d: dict[str, Any]) -> Thread:
    return Thread(
        tid=int(d["tid"]),
        name=d.get("name"),
        frames=tuple(frame_from_dict(f) for f in d.get("frames", ())),
        ident=d.get("ident"),
        active=d.get("active"),
        owns_gil=d.get("owns_gil"),
        cpu=ThreadCpu(**d["cpu"]) if d.get("cpu") else None,
    )


def waits_on_from_dict(d: dict[str, Any] | None) -> WaitsOn | None:
    if not d:
        return None
    return WaitsOn(**{**d, "kind": WaitKind(d["kind"])})


def holder_from_dict(d: dict[str, Any]) -> Holder:
    return Holder(**{**d, "waits_on": waits_on_from_dict(d.get("waits_on"))})


def request_from_dict(d: dict[str, Any] | None) -> RequestInfo | None:
    return RequestInfo(**d) if d else None


def task_from_dict(d: dict[str, Any]) -> Task:
    return Task(
        id=int(d["id"]),
        name=d["name"],
        frames=tuple(frame_from_dict(f) for f in d.get("frames", ())),
        waits_on=waits_on_from_dict(d.get("waits_on")),
        holds=tuple(w for w in map(waits_on_from_dict, d.get("holds", ())) if w is not None),
        awaited_by=tuple(int(x) for x in d.get("awaited_by", ())),
        request=request_from_dict(d.get("request")),
        waiting_s=d.get("waiting_s"),
        loop_tid=d.get("loop_tid"),
        done=bool(d.get("done", False)),
        exception=d.get("exception"),
    )


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    return Snapshot(
        pid=int(d["pid"]),
        taken_at=None if d.get("taken_at") is None else float(d["taken_at"]),
        threads=tuple(thread_from_dict(t) for t in d.get("threads", ())),
        source=d.get("source", "py-spy"),
        python_version=d.get("python_version"),
        command=d.get("command"),
        root=d.get("root"),
        duration_s=d.get("duration_s"),
        cwd=d.get("cwd"),
        tasks=tuple(task_from_dict(t) for t in d.get("tasks", ())),
        tasks_source=d.get("tasks_source"),
    )


def finding_from_dict(d: dict[str, Any]) -> Finding:
    wf = d.get("waits_for")
    state = d.get("state")
    return Finding(
        code=d["code"],
        message=d["message"],
        file=d["file"],
        line=int(d["line"]),
        function=d["function"],
        pid=d.get("pid"),
        thread=d.get("thread"),
        tid=d.get("tid"),
        blocked_for_s=d.get("blocked_for_s"),
        state=LoopState(state) if state else None,
        source=d.get("source"),
        col=d.get("col"),
        waits_for=WaitTarget(**wf) if wf else None,
        stack=tuple(frame_from_dict(f) for f in d.get("stack", ())),
        user_frame_index=d.get("user_frame_index"),
        chain=tuple(d.get("chain", ())),
        cwd=d.get("cwd"),
        task=d.get("task"),
        task_id=d.get("task_id"),
        waits_on=waits_on_from_dict(d.get("waits_on")),
        holders=tuple(holder_from_dict(h) for h in d.get("holders", ())),
        waiting_s=d.get("waiting_s"),
        request=request_from_dict(d.get("request")),
        cycle=tuple(d.get("cycle", ())),
        tasks_waiting=d.get("tasks_waiting"),
        phase=d.get("phase"),
    )


def _loop_from_dict(d: dict[str, Any]) -> LoopReport:
    return LoopReport(
        pid=int(d["pid"]),
        tid=int(d["tid"]),
        thread=d.get("thread"),
        kind=LoopKind(d["kind"]),
        state=LoopState(d["state"]),
        blocked_for_s=d.get("blocked_for_s"),
        busy_workers=d.get("busy_workers"),
        total_workers=d.get("total_workers"),
        cpu=CpuUse(**d["cpu"]) if d.get("cpu") else None,
    )
