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
_COUNT = [0]  # requests in flight
_SEEN = [False]  # set when a middleware exists: 0 in flight is then a fact, not unknown
_monotonic = time.monotonic


class InFlight:
    """A request being served; mutable, owned by the middleware."""

    __slots__ = ("disconnected", "extra", "id_header", "own", "scope", "started", "streaming")

    def __init__(
        self, scope: MutableMapping[str, Any], id_header: bytes, task: asyncio.Task[Any] | None
    ) -> None:
        # only what costs nothing now: the rest is read from the scope if a stall needs it
        self.scope = scope
        self.id_header = id_header
        own = id(task)
        self.own = own  # id() of the task serving the request
        self.started = _monotonic()
        self.streaming = False
        self.disconnected = False
        self.extra: list[int] | None = None  # ids of child tasks sending for it
        _BY_TASK[own] = self
        _COUNT[0] += 1

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

    def claim(self, task: asyncio.Task[Any] | None) -> None:
        """`task` (a child task sending for this request) serves it too."""
        key = id(task)
        if _BY_TASK.get(key) is not self:
            _BY_TASK[key] = self
            if self.extra is None:
                self.extra = [key]
            else:
                self.extra.append(key)

    def end(self) -> None:
        _COUNT[0] -= 1
        if _BY_TASK.get(self.own) is self:
            del _BY_TASK[self.own]
        for key in self.extra or ():
            if _BY_TASK.get(key) is self:
                del _BY_TASK[key]


def request_of_task(task: asyncio.Task[Any] | None, at: float | None = None) -> RequestInfo | None:
    """The request `task` serves, if the middleware registered it."""
    if task is None:
        return None
    found = _BY_TASK.get(id(task))
    return None if found is None else found.info(at)


def in_flight_count() -> int | None:
    """Requests in flight in this process, or None when no middleware exists."""
    return _COUNT[0] if _SEEN[0] else None


def mark_seen() -> None:
    _SEEN[0] = True
