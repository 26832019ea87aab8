"""Run a command the way a person does: on a real pseudo-terminal, colours on, at a given width.

Under a pipe rich falls back to plain text and `isatty()` is false, so a crash
or a layout fault that only a terminal triggers goes unseen (the probe's live
bar crashed on every real terminal while every test passed). `run_in_pty`
gives the child a pty of its own as stdin, stdout and stderr, with its window
size set (TIOCSWINSZ) and `COLUMNS` to match; `run_in_pipe` runs the same
command with its output on pipes, for the other half of the comparison.

Both have a deadline: on expiry the child is terminated, then killed, by PID.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# CSI (colours, cursor moves, erase), OSC (hyperlinks, titles), charset and keypad modes
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]"
)
# set by CI systems or by the person running the tests; each changes how rich draws
_TERMINAL_VARS = (
    "NO_COLOR",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "CI",
    "TERM",
    "COLUMNS",
    "LINES",
)


def strip_escapes(text: str) -> str:
    """`text` without terminal escape sequences, and with the pty's CR LF line ends as LF."""
    return _ESCAPE.sub("", text).replace("\r\n", "\n")


@dataclass(frozen=True)
class Run:
    """A finished command: its exit code and everything it wrote, as the terminal got it."""

    argv: tuple[str, ...]
    returncode: int
    raw: str  # escape sequences included
    stderr: str = ""  # only under a pipe; on a pty stderr is part of `raw`

    @property
    def text(self) -> str:
        """What a person reads: escapes removed, stdout and (on a pty) stderr."""
        return strip_escapes(self.raw) + strip_escapes(self.stderr)

    @property
    def lines(self) -> list[str]:
        """The screen lines; a carriage return (a redrawn progress line) starts a new one."""
        return re.split(r"[\r\n]", self.text)

    def padded_lines(self) -> list[str]:
        """The lines that end in blanks: padding a person copies, pipes and saves."""
        return [line for line in self.lines if line != line.rstrip(" \t")]

    def describe(self, tail: int = 4000) -> str:
        """The command and the end of its output, for an assertion message."""
        return f"{' '.join(self.argv)} -> exit {self.returncode}\n{self.text[-tail:]}"


def terminal_env(columns: int, *, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an interactive shell: colours allowed, xterm, `columns` wide."""
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_VARS}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def hangdoctor_argv(*args: str) -> list[str]:
    """The real CLI, run by this interpreter."""
    return [sys.executable, "-m", "hangdoctor", *args]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_in_pty(
    argv: Sequence[str],
    *,
    columns: int,
    rows: int = 50,
    timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> Run:
    """Run `argv` on a fresh pseudo-terminal `columns` wide; fail after `timeout` seconds."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=str(cwd),
            env=terminal_env(columns, extra=env),
            start_new_session=True,  # its own session: Ctrl-C of the test run is not its
        )
    finally:
        os.close(slave)  # the child holds it now: EOF (EIO) on master when the child is done
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(argv)} did not finish within {timeout} s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal closed it
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break  # a process it left behind may hold the terminal: the child is done
        code = proc.wait(timeout=10)
    finally:
        _stop(proc)
        os.close(master)
    return Run(tuple(argv), code, b"".join(chunks).decode("utf-8", "replace"))


def run_in_pipe(
    argv: Sequence[str],
    *,
    columns: int,
    timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> Run:
    """Run `argv` with stdout and stderr on pipes (as in CI or `| less`), `COLUMNS` wide."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd),
        env=terminal_env(columns, extra=env),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
