"""Start a server process, wait until it answers, and always stop it again.

Used by `demo` (and by `doctor`): the server runs in its own session so a
Ctrl-C in the terminal reaches only hangdoctor, which then stops the server
and every process the server started, by PID.

The server's output goes to a log file in the temporary directory. `stop()`
removes it, unless `failure_output()` was asked for: then the server is why
hangdoctor fails, and the user needs the whole log, at the path it names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from hangdoctor.errors import HangdoctorError
from hangdoctor.probe.http import timed_get

__all__ = ["ManagedServer", "ServerError", "free_port"]


class ServerError(HangdoctorError):
    """The server did not come up, or died."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every descendant of `pid`, read from /proc."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        # the comm field may contain spaces and parentheses: split after the last ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            parent_of[int(entry)] = int(fields[1])
    out: list[int] = []
    frontier = [pid]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parent_of.items() if pp == cur]
        out.extend(kids)
        frontier.extend(kids)
    return out


class ManagedServer:
    """A server command run as a child process on 127.0.0.1."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        base_url: str,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/health",
        ready_timeout: float = 20.0,
    ) -> None:
        self.argv = list(argv)
        self.base_url = base_url.rstrip("/")
        self.cwd = cwd
        self.env = dict(os.environ) | dict(env or {})
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._keep_log = False
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="hangdoctor-server-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError("The server was not started.", "Call start() first.")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the server has exited, else None."""
        return None if self._proc is None else self._proc.poll()

    @property
    def log_path(self) -> Path:
        return Path(self._log.name)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure_output(self, lines: int = 15) -> str:
        """What the server printed, for the remedy of an error it caused; keeps the log.

        An empty log is not worth keeping: "Its last output:" over nothing would
        read as if the output were lost.
        """
        self._log.flush()
        tail = self.log_tail(lines)
        if not tail.strip():
            return "It printed nothing before that."
        self._keep_log = True
        return f"Its last output (all of it is in {self.log_path}):\n{tail}"

    def _close_log(self) -> None:
        self._log.close()
        if not self._keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def start(self) -> ManagedServer:
        try:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not reach it directly
            )
        except (FileNotFoundError, PermissionError) as exc:
            self._close_log()
            what = "was not found" if isinstance(exc, FileNotFoundError) else "cannot be run"
            raise ServerError(
                f"The server command {self.argv[0]!r} {what}.",
                "Check the command (is the virtual environment active?).",
            ) from None
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        url = self.base_url + self.ready_path
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                output = self.failure_output()
                self.stop()
                raise ServerError(
                    f"The server exited with code {code} before it answered {url}.", output
                )
            if timed_get(url, timeout=0.5).ok:
                return
            time.sleep(0.1)
        output = self.failure_output()
        self.stop()
        raise ServerError(
            f"The server did not answer {url} within {self.ready_timeout:.0f} s.", output
        )

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL for it and every process it started; never leaves one behind."""
        proc = self._proc
        if proc is None:
            if not self._log.closed:
                self._close_log()
            return
        family = _children(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                # a blocked loop cannot run its own shutdown: this is expected for a hung app
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
        for child in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        self._proc = None
        self._close_log()

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
