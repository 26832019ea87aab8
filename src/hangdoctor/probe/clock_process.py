"""The parent's side of the health clock: start the child, read its reports, always stop it.

See `clock` for why health requests are timed in a process of their own. The
child's reports arrive on a pipe the probe's event loop reads without a task
per line; a late report only delays what the probe does with a measurement
(show it, trigger a capture), never the measurement itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hangdoctor
from hangdoctor.probe.clock import ClockConfig
from hangdoctor.probe.errors import ProbeError

__all__ = ["ClockProcess"]

_READY_TIMEOUT_S = 15.0


def _child_env() -> dict[str, str]:
    """Our environment, with the directory hangdoctor is imported from on the path first."""
    env = dict(os.environ)
    root = str(Path(hangdoctor.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class ClockProcess:
    """One health-clock child: `start()`, `begin(config)`, then reports go to `on_report`."""

    def __init__(self, on_report: Callable[[list[Any]], None]) -> None:
        self._on_report = on_report
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self.ended: asyncio.Future[None] | None = None
        self.returncode: int | None = None  # set by stop(): 0 when the child ended by itself

    async def start(self) -> None:
        """Start the child and wait until it has imported what it needs."""
        loop = asyncio.get_running_loop()
        # once, before anything is timed: the fork and exec hold this loop a few ms, and
        # only the probe's own requests wait on it (asyncio's subprocess API would need a
        # child watcher and a transport for what is a pipe read by hand below)
        self._proc = subprocess.Popen(  # hangdoctor: ignore[HD204]
            [sys.executable, "-m", "hangdoctor.probe.clock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),  # hangdoctor: ignore[HD205]
        )
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        ready: asyncio.Future[None] = loop.create_future()
        self.ended = loop.create_future()

        def readable() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            try:
                data = os.read(self._proc.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self._proc.stdout.fileno())
                if not ready.done():
                    ready.set_exception(
                        ProbeError(
                            "The probe's health clock process exited before it started.",
                            f"Check that `{sys.executable} -m hangdoctor.probe.clock` runs.",
                        )
                    )
                    ready.exception()
                if self.ended is not None and not self.ended.done():
                    self.ended.set_result(None)
                return
            self._buf += data
            *lines, self._buf = self._buf.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if message == "ready":
                    if not ready.done():
                        ready.set_result(None)
                elif message == ["end"]:
                    if self.ended is not None and not self.ended.done():
                        self.ended.set_result(None)
                else:
                    self._on_report(message)

        loop.add_reader(self._proc.stdout.fileno(), readable)
        try:
            await asyncio.wait_for(ready, _READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            await self.aclose()
            raise ProbeError(
                f"The probe's health clock process did not start within {_READY_TIMEOUT_S:g} s.",
                "The machine is overloaded: try again, or with fewer --clients.",
            ) from None
        except ProbeError:
            await self.aclose()
            raise

    def begin(self, config: ClockConfig) -> None:
        """Hand the child its schedule: tick 0 is at `config.t0`."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(config.to_json().encode() + b"\n")
        self._proc.stdin.flush()

    async def wait_end(self, timeout: float) -> None:
        """Wait until the child has reported its last request (bounded by `timeout`)."""
        if self.ended is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), timeout)

    def _detach(self) -> subprocess.Popen[bytes] | None:
        """Stop reading from the child and close its stdin: it stops at once."""
        proc = self._proc
        if proc is None:
            return None
        self._proc = None
        if proc.stdout is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(proc.stdout.fileno())
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        return proc

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            self.returncode = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = proc.wait(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """Close its stdin, then make sure it is gone (blocks up to 4 s: not on a loop)."""
        proc = self._detach()
        if proc is not None:
            self._reap(proc)

    async def aclose(self) -> None:
        """`stop()` for the probe's event loop: the wait for the child runs in a thread."""
        proc = self._detach()
        if proc is not None:
            await asyncio.to_thread(self._reap, proc)
