"""Which request each asyncio task is serving, for naming the request in a stall.

The middleware registers a request when it starts, with its task and every
other task that sends or receives for it (a streaming response's body runs in
a child task); the watchdog, on its own thread, asks which request the loop's
current task belongs to. Plain dicts under the GIL: a lookup from another
thread sees a consistent entry or none. This sits on every request's path, so
it is kept to a few dictionary operations.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from hangdoctor.runtime.stall import RequestInfo

__all__ = ["InFlight", "in_flight_count", "mark_seen", "request_of_task"]

_BY_TASK: dict[int, InFlight] = {}  # id(task) -> request; removed when the request ends
_OPEN: dict[int, InFlight] = {}  # id(request) -> request
_SEEN = [False]  # set when a middleware exists: 0 in flight is then a fact, not unknown
_current_task = asyncio.current_task
_monotonic = time.monotonic


class InFlight:
    """A request being served; mutable, owned by the middleware."""

    __slots__ = ("disconnected", "id_header", "scope", "started", "streaming", "tasks")

    def __init__(self, scope: MutableMapping[str, Any], id_header: bytes) -> None:
        # only what costs nothing now: the rest is read from the scope if a stall needs it
        self.scope = scope
        self.id_header = id_header
        self.started = _monotonic()
        self.streaming = False
        self.disconnected = False
        self.tasks: list[int] = []

    def info(self, at: float | None = None) -> RequestInfo:
        scope = self.scope
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        request_id = None
        for key, value in scope.get("headers") or ():
            if bytes(key).lower() == self.id_header:
                request_id = bytes(value).decode("latin-1")
                break
        return RequestInfo(
            method=str(scope.get("method", "GET")),
            path=str(scope.get("path", "")),
            route=template if isinstance(template, str) else None,
            request_id=request_id,
            streaming=self.streaming,
            disconnected=self.disconnected,
            age_s=None if at is None else round(max(0.0, at - self.started), 3),
        )

    def begin(self) -> asyncio.Task[Any] | None:
        """Register the request and the task serving it; that task, for `claim`."""
        _OPEN[id(self)] = self
        task = _current_task()
        if task is not None:
            self.tasks.append(id(task))
            _BY_TASK[id(task)] = self
        return task

    def claim(self, task: asyncio.Task[Any]) -> None:
        """`task` (a child task sending or receiving for this request) serves it too."""
        key = id(task)
        if _BY_TASK.get(key) is not self:
            self.tasks.append(key)
            _BY_TASK[key] = self

    def end(self) -> None:
        for key in self.tasks:
            if _BY_TASK.get(key) is self:
                del _BY_TASK[key]
        _OPEN.pop(id(self), None)


def request_of_task(task: asyncio.Task[Any] | None, at: float | None = None) -> RequestInfo | None:
    """The request `task` serves, if the middleware registered it."""
    if task is None:
        return None
    found = _BY_TASK.get(id(task))
    return None if found is None else found.info(at)


def in_flight_count() -> int | None:
    """Requests in flight in this process, or None when no middleware exists."""
    return len(_OPEN) if _SEEN[0] else None


def mark_seen() -> None:
    _SEEN[0] = True
