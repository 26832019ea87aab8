"""Headless Chromium for tests: find or install Debian's package, drive it with Playwright.

The browser is the distribution's `chromium` package, not one Playwright
downloads: tests install it themselves on a fresh machine (as root, with
apt-get, once, under a lock so parallel runs do not collide). The `playwright`
pip package only drives it over a pipe; `playwright install` is never run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.apt import install

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
LAUNCH_TIMEOUT_MS = 60_000


def chromium_path() -> str:
    """/usr/bin/chromium, installed with apt-get first if missing (root only; else skip)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.skip(
            f"{CHROMIUM} is not installed and installing it needs root: "
            "run `sudo apt-get install chromium`."
        )
    error = install(("chromium",), ready=lambda: os.access(CHROMIUM, os.X_OK))
    if error or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Could not install Chromium: {error or 'no ' + CHROMIUM}")
    return CHROMIUM


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
