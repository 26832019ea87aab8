"""Which request each asyncio task is serving, for naming the request in a stall.

The middleware registers a request when it starts and every task that sends or
receives for it (a streaming response's body runs in a child task); the
watchdog, on its own thread, asks which request the loop's current task
belongs to. Plain dicts under the GIL: a lookup from another thread sees a
consistent entry or none.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from hangdoctor.runtime.stall import RequestInfo

__all__ = ["InFlight", "in_flight_count", "mark_seen", "request_of_task"]

_CURRENT: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "hangdoctor_request", default=None
)
_BY_TASK: dict[int, InFlight] = {}  # id(task) -> request; removed when the request ends
_OPEN: dict[int, InFlight] = {}  # serial -> request
_SERIAL = itertools.count(1)


@dataclass
class InFlight:
    """A request being served; mutable, owned by the middleware."""

    method: str
    path: str
    scope: dict[str, Any]
    request_id: str | None = None
    started: float = field(default_factory=time.monotonic)
    streaming: bool = False
    disconnected: bool = False
    serial: int = field(default_factory=lambda: next(_SERIAL))
    tasks: set[int] = field(default_factory=set)

    def info(self, at: float | None = None) -> RequestInfo:
        route = self.scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        return RequestInfo(
            method=self.method,
            path=self.path,
            route=template if isinstance(template, str) else None,
            request_id=self.request_id,
            streaming=self.streaming,
            disconnected=self.disconnected,
            age_s=None if at is None else round(max(0.0, at - self.started), 3),
        )

    def begin(self) -> contextvars.Token[InFlight | None]:
        _OPEN[self.serial] = self
        self.claim_current_task()
        return _CURRENT.set(self)

    def claim_current_task(self) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: nothing to attribute
            return
        if task is not None and id(task) not in self.tasks:
            self.tasks.add(id(task))
            _BY_TASK[id(task)] = self

    def end(self, token: contextvars.Token[InFlight | None]) -> None:
        for key in self.tasks:
            if _BY_TASK.get(key) is self:
                del _BY_TASK[key]
        self.tasks.clear()
        _OPEN.pop(self.serial, None)
        # ended in another context (a cancelled child task): nothing to reset
        with contextlib.suppress(ValueError):
            _CURRENT.reset(token)


def request_of_task(task: asyncio.Task[Any] | None, at: float | None = None) -> RequestInfo | None:
    """The request `task` serves, if the middleware registered it."""
    if task is None:
        return None
    found = _BY_TASK.get(id(task))
    if found is None:
        get_context = getattr(task, "get_context", None)  # 3.12+: the task's own context
        if get_context is not None:
            try:
                found = get_context().get(_CURRENT)
            except Exception:  # a foreign task class: no attribution rather than a crash
                found = None
    return None if found is None else found.info(at)


def in_flight_count() -> int | None:
    """Requests in flight in this process, or None when no middleware ever ran."""
    return len(_OPEN) if _SEEN[0] else None


_SEEN = [False]  # set by the middleware when it starts: 0 in flight is then a fact


def mark_seen() -> None:
    _SEEN[0] = True
