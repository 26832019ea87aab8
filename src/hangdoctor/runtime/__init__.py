"""Always-on protection inside the service: the loop watchdog and the ASGI middleware.

Standard library only (the Prometheus metrics live in `hangdoctor.runtime.metrics`
and need the `prometheus` extra): this package is imported inside production
services. Its names load on first use, so `hangdoctor watch`'s start-up hook,
which runs in every Python process of the server, imports the watchdog only
in a process that runs an event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hangdoctor._lazy import lazy_attributes

if TYPE_CHECKING:
    from hangdoctor.runtime.middleware import HangdoctorMiddleware
    from hangdoctor.runtime.stall import RequestInfo, StallRecord, recent_stalls
    from hangdoctor.runtime.stuck import StuckRecord, recent_stuck
    from hangdoctor.runtime.watchdog import LoopWatchdog

_LAZY = {
    "HangdoctorMiddleware": "hangdoctor.runtime.middleware",
    "LoopWatchdog": "hangdoctor.runtime.watchdog",
    "RequestInfo": "hangdoctor.runtime.stall",
    "StallRecord": "hangdoctor.runtime.stall",
    "recent_stalls": "hangdoctor.runtime.stall",
    "StuckRecord": "hangdoctor.runtime.stuck",
    "recent_stuck": "hangdoctor.runtime.stuck",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "HangdoctorMiddleware",
    "LoopWatchdog",
    "RequestInfo",
    "StallRecord",
    "StuckRecord",
    "recent_stalls",
    "recent_stuck",
]
