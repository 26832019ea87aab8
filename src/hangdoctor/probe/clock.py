"""The health clock: times the health endpoint from a process of its own.

Hundreds of churning stream clients keep the probe's event loop busy, and a
capture parses py-spy output in a thread that shares the GIL. Neither may
delay a health measurement, so the health requests run here, in a child
process whose event loop does nothing else. CLOCK_MONOTONIC is one clock for
the whole machine, so the times it reports are on the probe's own axis.

Protocol (one JSON document per line): the child prints `"ready"`; the parent
sends the config (`ClockConfig` as a dict); the child then prints
`["start", k, t_mono]` when request k starts, `["late", k, t_mono]` when it is
still waiting at the stall threshold, `["done", k, t_mono, latency_s, status,
timed_out, error]` when it ends, and `["end"]` after the last one. Closing its
stdin stops it at once: the child never outlives the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from hangdoctor.probe.sse_client import open_exchange

__all__ = ["ClockConfig", "describe_error", "main", "raise_priority"]


@dataclass(frozen=True)
class ClockConfig:
    """What the child needs: where to connect, the request, and the schedule."""

    address: str
    port: int
    request: str  # latin-1 text of the request bytes
    tls: bool
    server_hostname: str
    insecure: bool
    t0: float  # time.monotonic() of tick 0
    interval_s: float
    timeout_s: float
    stall_s: float
    duration_s: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def describe_error(exc: BaseException) -> str:
    """A short, stable description of a failed request (refused is what ends a run)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


def _emit(message: Any) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the probe is gone: so are we, quietly
        os._exit(0)


def _ssl_context(config: ClockConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    ctx = ssl.create_default_context()
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _request(config: ClockConfig, request: bytes, ctx: ssl.SSLContext | None) -> int:
    exchange = await open_exchange(
        config.address,
        config.port,
        request,
        ssl_context=ctx,
        server_hostname=config.server_hostname,
        timeout=config.timeout_s,
    )
    try:
        head = await exchange.head
        await exchange.done
        return head.status
    finally:
        exchange.close()


async def _one(k: int, config: ClockConfig, request: bytes, ctx: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    _emit(["start", k, start])
    late = loop.call_later(config.stall_s, _emit, ["late", k, start])
    status: int | None = None
    error: str | None = None
    timed_out = False
    try:
        status = await asyncio.wait_for(_request(config, request, ctx), config.timeout_s)
    except asyncio.TimeoutError:
        timed_out = True
    except (OSError, ssl.SSLError, ValueError) as exc:
        error = describe_error(exc)
    finally:
        late.cancel()
    _emit(["done", k, start, time.monotonic() - start, status, timed_out, error])


async def run_clock(config: ClockConfig) -> None:
    """Start a health request at t0 + k * interval until the duration ends; wait for them."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def on_stdin() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:  # the parent closed our stdin: stop now
            loop.remove_reader(sys.stdin.fileno())
            stopped.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    request = config.request.encode("latin-1")
    ctx = _ssl_context(config)
    tasks: set[asyncio.Task[None]] = set()
    k = 0
    while not stopped.is_set():
        due = config.t0 + k * config.interval_s
        if due - config.t0 >= config.duration_s:
            break
        delay = due - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stopped.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        task = asyncio.create_task(_one(k, config, request, ctx))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        # fallen behind (the machine was busy): skip the missed ticks, never burst
        k = max(k + 1, int((time.monotonic() - config.t0) / config.interval_s) + 1)
    if tasks and not stopped.is_set():  # each in-flight request ends by its own deadline
        waiting = asyncio.ensure_future(stopped.wait())
        while tasks and not waiting.done():
            await asyncio.wait({waiting, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _emit(["end"])


def raise_priority() -> str:
    """Run ahead of the probe's stream clients and the server; what this process got.

    On a busy machine a process woken by a health response can wait milliseconds
    for a CPU, and that wait would count as the server's latency. The clock does
    a few microseconds of work ten times a second, so the lowest real-time
    priority (where permitted: root or CAP_SYS_NICE) costs the rest nothing;
    failing that a higher nice value, failing that nothing.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        return "realtime"
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    return "normal"


def main() -> None:
    """Entry point of the child process (`python -m hangdoctor.probe.clock`)."""
    # Ctrl-C in the terminal reaches the whole process group: the probe stops us by
    # closing our stdin, and a traceback from here would only clutter its output.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_priority()
    _emit("ready")
    line = sys.stdin.readline()
    if not line:
        return
    asyncio.run(run_clock(ClockConfig(**json.loads(line))))


if __name__ == "__main__":
    main()
