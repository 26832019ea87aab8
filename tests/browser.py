"""Headless Chromium for tests: find or install Debian's package, drive it with Playwright.

The browser is the distribution's `chromium` package, not one Playwright
downloads: tests install it themselves on a fresh machine (as root, with
apt-get, once, under a lock so parallel runs do not collide). The `playwright`
pip package only drives it over a pipe; `playwright install` is never run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Page, Request

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PageWatch",
    "chromium_path",
    "launch",
]

CHROMIUM = "/usr/bin/chromium"
# No sandbox (tests run as root in containers), and nothing that phones home.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_TIMEOUT_S = 600.0
LAUNCH_TIMEOUT_MS = 60_000
_LOCK = Path(tempfile.gettempdir()) / "hangdoctor-chromium-install.lock"
_INSTALL_CMDS = (
    ("apt-get", "update"),
    ("apt-get", "install", "-y", "--no-install-recommends", "chromium"),
)

_install_failed: str | None = None  # one failed install per process is enough: do not retry


def chromium_path() -> str:
    """/usr/bin/chromium, installed with apt-get first if missing (root only; else skip)."""
    global _install_failed
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.skip(
            f"{CHROMIUM} is not installed and installing it needs root: "
            "run `sudo apt-get install chromium`."
        )
    if _install_failed is None:
        _install_failed = _install_locked()
    if _install_failed or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Could not install Chromium: {_install_failed or 'no ' + CHROMIUM}")
    return CHROMIUM


def _install_locked() -> str:
    """Install under an exclusive lock; '' on success, else what went wrong."""
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    with open(_LOCK, "a") as lock:
        # another run may be installing: wait for it instead of racing apt's own lock
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return f"another process held {_LOCK} for {INSTALL_TIMEOUT_S:.0f} s"
                time.sleep(1.0)
        try:
            if os.access(CHROMIUM, os.X_OK):
                return ""  # the other run installed it
            for cmd in _INSTALL_CMDS:
                error = _run(cmd, deadline)
                if error:
                    return error
            return ""
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: tuple[str, ...], deadline: float) -> str:
    """Run one apt-get step within the deadline; its whole process group dies on timeout."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # apt-get starts dpkg and download helpers: one group to end
    )
    try:
        out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"`{' '.join(cmd)}` did not finish within {INSTALL_TIMEOUT_S:.0f} s"
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-8:])
        return f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{tail}"
    return ""


@contextlib.contextmanager
def launch(user_data_dir: Path) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile in `user_data_dir`; closed on exit."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the playwright package drives Chromium: pip install playwright",
    )
    executable = chromium_path()
    with sync_api.sync_playwright() as pw:
        context: BrowserContext = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            timeout=LAUNCH_TIMEOUT_MS,
            viewport={"width": 1200, "height": 900},
            color_scheme="light",
        )
        try:
            yield context
        finally:
            context.close()


@dataclass
class PageWatch:
    """Everything a page did that a clean page does not: console errors, exceptions, requests."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page) -> PageWatch:
        """Start watching `page`; attach before navigating so nothing is missed."""
        watch = cls()

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type in ("error", "warning"):
                watch.console.append(f"{msg.type}: {msg.text}")

        def on_failed(request: Request) -> None:
            watch.failed.append(f"{request.url}: {request.failure}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
        page.on("requestfailed", on_failed)
        page.on("request", lambda request: watch.requests.append(request.url))

        def on_dialog(dialog: Dialog) -> None:
            watch.dialogs.append(dialog.message)
            dialog.dismiss()  # a page waiting on alert() would otherwise hang the test

        page.on("dialog", on_dialog)
        return watch

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, failed requests, dialogs."""
        return [
            *self.console,
            *(f"page error: {e}" for e in self.errors),
            *(f"request failed: {f}" for f in self.failed),
            *(f"dialog: {d}" for d in self.dialogs),
        ]
