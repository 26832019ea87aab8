"""Always-on protection inside the service: the loop watchdog and the ASGI middleware.

Standard library only (the Prometheus metrics live in `hangdoctor.runtime.metrics`
and need the `prometheus` extra): this package is imported inside production
services.
"""

from __future__ import annotations

from hangdoctor.runtime.middleware import HangdoctorMiddleware
from hangdoctor.runtime.stall import RequestInfo, StallRecord, recent_stalls
from hangdoctor.runtime.watchdog import LoopWatchdog

__all__ = ["HangdoctorMiddleware", "LoopWatchdog", "RequestInfo", "StallRecord", "recent_stalls"]
