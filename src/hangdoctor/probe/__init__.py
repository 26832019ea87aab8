"""Drive a service from outside: start it, time its health endpoint, open and drop streams."""

from __future__ import annotations

from hangdoctor.probe.http import HealthResult, abort_stream, timed_get
from hangdoctor.probe.server import ManagedServer, ServerError, free_port

__all__ = ["HealthResult", "ManagedServer", "ServerError", "abort_stream", "free_port", "timed_get"]
