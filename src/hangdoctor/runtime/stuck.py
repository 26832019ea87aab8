"""What the watchdog reports about tasks: one `StuckRecord` per stuck request or task.

A stall record (`stall`) says the loop *thread* stopped. A stuck record says the
loop kept answering while some of its tasks waited on one another: an await
deadlock (HD601), a drained pool (HD602), a future nobody will resolve (HD603),
a limiter with every token held (HD604), a response going on after its client
left (HD605), a shutdown waiting for what is still open (HD606). It is made
from the same `Finding` `judge_tasks` gives `hangdoctor diagnose`, plus what
only the process knows: how long each task has waited, the request it serves.

A record never holds a secret-looking value: the sentences and source lines it
quotes, and the exceptions of tasks that ended, are scrubbed with `redact_text`
when it is made. Object addresses (the keys that link waiters to holders inside
the process) are not kept: they mean nothing outside it.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hangdoctor.capture.redact import redact_text
from hangdoctor.model import Finding, Frame, Holder, RequestInfo, WaitsOn, frame_from_dict
from hangdoctor.runtime.stall import JsonRecord, Recent
from hangdoctor.timefmt import to_millis

__all__ = ["StuckHolder", "StuckRecord", "StuckWait", "recent_stuck"]


@dataclass(frozen=True)
class StuckWait:
    """What a task waits on (or a holder itself waits on), as the user's code knows it."""

    kind: str  # lock, semaphore, pool, future, shutdown... (`WaitKind`)
    name: str | None = None  # as the code names it: "lock_b", "self.pool"
    type: str | None = None  # "asyncio.Lock", "httpcore.AsyncConnectionPool"
    # "file:line" where it was made or taken, when known; JSON `created_in` (`*_at` is a moment)
    created_at: str | None = None
    capacity: int | None = None  # tokens of a semaphore or limiter, connections of a pool
    in_use: int | None = None
    waiters: int | None = None
    detail: str | None = None  # one phrase more: "its task `reader` ended with OSError(...)"

    @classmethod
    def of(cls, waits: WaitsOn | None) -> StuckWait | None:
        if waits is None:
            return None
        return cls(
            kind=waits.kind.value,
            name=waits.name,
            type=waits.type,
            created_at=waits.created_at,
            capacity=waits.capacity,
            in_use=waits.in_use,
            waiters=waits.waiters,
            detail=redact_text(waits.detail) if waits.detail else None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StuckWait | None:
        if not data:
            return None
        return cls(
            kind=data["kind"],
            name=data.get("name"),
            type=data.get("type"),
            # schema_version 1 called it `created_at`, a name JSON now keeps for moments
            created_at=data.get("created_in", data.get("created_at")),
            capacity=data.get("capacity"),
            in_use=data.get("in_use"),
            waiters=data.get("waiters"),
            detail=data.get("detail"),
        )

    def describe(self) -> str:
        what = self.type or self.kind
        return f"{what} `{self.name}`" if self.name else what


@dataclass(frozen=True)
class StuckHolder:
    """Who holds what the task waits on (or would set it), and what that holder does now."""

    task: str  # the task's name, or what holds it when not a task ("an open response")
    file: str | None = None  # where it took the thing: the `async with` line
    line: int | None = None
    function: str | None = None
    since_s: float | None = None  # how long it has waited where it is, when known
    waits_on: StuckWait | None = None  # what the holder itself waits on: a cycle shows here
    waits_at: str | None = None  # "file:line" where the holder waits; JSON `waits_in`
    alive: bool = True
    exception: str | None = None  # a holder or resolver task that ended with an exception

    @classmethod
    def of(cls, holder: Holder) -> StuckHolder:
        return cls(
            task=holder.task,
            file=holder.file,
            line=holder.line,
            function=holder.function,
            since_s=holder.since_s,
            waits_on=StuckWait.of(holder.waits_on),
            waits_at=holder.waits_at,
            alive=holder.alive,
            exception=redact_text(holder.exception) if holder.exception else None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StuckHolder:
        return cls(
            task=data["task"],
            file=data.get("file"),
            line=data.get("line"),
            function=data.get("function"),
            since_s=data.get("since_s"),
            waits_on=StuckWait.from_dict(data.get("waits_on")),
            waits_at=data.get("waits_in", data.get("waits_at")),  # version 1: `waits_at`
            alive=bool(data.get("alive", True)),
            exception=data.get("exception"),
        )


@dataclass(frozen=True)
class StuckRecord(JsonRecord):
    """One stuck episode on one loop: the cause, where the task waits, on what, held by whom."""

    code: str  # catalog code: HD601 ... HD606
    name: str  # the catalog entry's name: await-deadlock
    message: str  # one sentence, as `diagnose` words it
    file: str  # where the task waits: its innermost frame in the user's code
    line: int
    function: str
    pid: int
    thread: str | None  # the loop's thread
    tid: int
    seen_at: float  # wall clock (time.time()) of the check that found it
    source: str | None = None  # the source line at file:line
    waits_on: StuckWait | None = None
    holders: tuple[StuckHolder, ...] = ()
    task: str | None = None  # the waiting task's name
    task_id: int | None = None
    waiting_s: float | None = None  # how long its await has not moved
    request: RequestInfo | None = None  # the request it serves (with the middleware)
    cycle: tuple[str, ...] = ()  # HD601: the tasks of the cycle, in order
    tasks_waiting: int | None = None  # HD602/HD604: how many tasks wait on the same thing
    stack: tuple[Frame, ...] = ()  # the task's await chain, innermost first
    notes: tuple[str, ...] = field(default=())

    KIND: ClassVar[str] = "stuck"  # stall records say "stall"
    JSON_KEYS: ClassVar[dict[str, str]] = {"thread": "thread_name"}
    MOMENTS: ClassVar[tuple[str, ...]] = ("seen_at",)

    def __post_init__(self) -> None:
        # frozen: the scrubbed values replace the given ones before anyone can read them
        for name in ("message", "source"):
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, redact_text(value))
        if self.notes:
            object.__setattr__(self, "notes", tuple(redact_text(n) for n in self.notes))
        if any(f.locals for f in self.stack):  # never a local's value in a record
            object.__setattr__(self, "stack", tuple(replace(f, locals=()) for f in self.stack))
        # the JSON writes the moment to the millisecond: a record read back is equal
        object.__setattr__(self, "seen_at", to_millis(self.seen_at))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        # places are `*_in` in JSON: `*_at` names a moment in every hangdoctor output
        data["waits_on"] = _wait_json(data["waits_on"])
        data["holders"] = [
            {
                ("waits_in" if k == "waits_at" else k): (_wait_json(v) if k == "waits_on" else v)
                for k, v in holder.items()
            }
            for holder in data["holders"]
        ]
        return data

    @classmethod
    def from_finding(
        cls,
        finding: Finding,
        *,
        pid: int,
        thread: str | None,
        tid: int,
        name: str | None = None,
        seen_at: float | None = None,
        notes: tuple[str, ...] = (),
    ) -> StuckRecord:
        """The record of one HD6xx finding (`judge_tasks` fills every field used here)."""
        if name is None:
            from hangdoctor.catalog import get_rule

            name = get_rule(finding.code).name
        return cls(
            code=finding.code,
            name=name,
            message=finding.message,
            file=finding.file,
            line=finding.line,
            function=finding.function,
            pid=pid,
            thread=thread,
            tid=tid,
            seen_at=time.time() if seen_at is None else seen_at,
            source=finding.source.strip() if finding.source else None,
            waits_on=StuckWait.of(finding.waits_on),
            holders=tuple(StuckHolder.of(h) for h in finding.holders),
            task=finding.task,
            task_id=finding.task_id,
            waiting_s=finding.waiting_s,
            request=finding.request,
            cycle=finding.cycle,
            tasks_waiting=finding.tasks_waiting,
            stack=finding.stack,
            notes=notes,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StuckRecord:
        """A record from its JSON, as written now (schema_version 2) or by version 1."""
        data = cls.attributes(data)
        req = data.get("request")
        return cls(
            code=data["code"],
            name=data["name"],
            message=data["message"],
            file=data["file"],
            line=int(data["line"]),
            function=data["function"],
            pid=int(data["pid"]),
            thread=data.get("thread"),
            tid=int(data["tid"]),
            seen_at=data["seen_at"],
            source=data.get("source"),
            waits_on=StuckWait.from_dict(data.get("waits_on")),
            holders=tuple(StuckHolder.from_dict(h) for h in data.get("holders", ())),
            task=data.get("task"),
            task_id=data.get("task_id"),
            waiting_s=data.get("waiting_s"),
            request=RequestInfo(**req) if req else None,
            cycle=tuple(data.get("cycle", ())),
            tasks_waiting=data.get("tasks_waiting"),
            stack=tuple(frame_from_dict(f) for f in data.get("stack", ())),
            notes=tuple(data.get("notes", ())),
        )

    def summary(self) -> str:
        """One line for a log or a terminal."""
        text = (
            f"requests stuck: {self.code} {self.name} at {self.file}:{self.line} in {self.function}"
        )
        if self.request is not None:
            text += f" during {self.request.method} {self.request.route or self.request.path}"
        if self.cycle:
            text += f" ({' -> '.join(self.cycle)} -> {self.cycle[0]})"
        elif self.tasks_waiting and self.tasks_waiting > 1:
            text += f" ({self.tasks_waiting} tasks waiting)"
        if self.waiting_s is not None:
            text += f", waiting {self.waiting_s:.1f} s"
        return text


def _wait_json(wait: dict[str, Any] | None) -> dict[str, Any] | None:
    if wait is None:
        return None
    return {("created_in" if k == "created_at" else k): v for k, v in wait.items()}


_RECENT: Recent[StuckRecord] = Recent()
_remember = _RECENT.add


def recent_stuck(limit: int = 100) -> list[StuckRecord]:
    """The last `limit` stuck records of any watchdog of this process, oldest first."""
    return _RECENT.last(limit)
