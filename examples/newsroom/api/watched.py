"""The newsroom app (with its canonical SSE hang) under hangdoctor's runtime protection.

Run it with `uvicorn api.watched:app --app-dir examples/newsroom`. The middleware
starts a loop watchdog in every worker, names the request each stall happened
in, counts open streams, and feeds the Prometheus metrics served at /metrics.
Set NEWSROOM_DEBUG_TOKEN to also serve the recent stalls at /_hangdoctor/stalls
(bearer token required).
"""

from __future__ import annotations

import os

from prometheus_client import make_asgi_app

from api.main import create_app
from api.routes import stream
from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog
from hangdoctor.runtime.metrics import HangdoctorMetrics

_token = os.environ.get("NEWSROOM_DEBUG_TOKEN") or None
inner = create_app(stream.router)
inner.mount("/metrics", make_asgi_app())

app = HangdoctorMiddleware(
    inner,
    watchdog=LoopWatchdog(threshold=float(os.environ.get("NEWSROOM_STALL_THRESHOLD", "0.25"))),
    observer=HangdoctorMetrics(),
    debug_path="/_hangdoctor/stalls" if _token else None,
    debug_token=_token,
)
