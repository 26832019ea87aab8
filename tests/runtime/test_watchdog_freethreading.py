"""The loop watchdog refuses to start on a free-threaded Python with the GIL disabled.

Its stall verdicts are untested without a GIL, so on such an interpreter it logs one
warning and watches nothing rather than report what might be wrong. No free-threaded
CPython exists on this machine (Debian packages none; see docs/python-versions.md), so
the interpreter's own answer, `sys._is_gil_enabled()`, is set for the refusal test; the
default build's real answer is checked as it is.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import pytest

from hangdoctor.runtime import LoopWatchdog
from hangdoctor.runtime.watchdog import _gil_disabled


def _block_under_watchdog() -> tuple[LoopWatchdog, bool]:
    """Block the loop for 0.4 s under a 0.1 s watchdog; the watchdog and whether it ran."""

    async def main() -> tuple[LoopWatchdog, bool]:
        async with LoopWatchdog(0.1, log=False) as dog:
            running = dog.running
            await asyncio.sleep(0.05)
            time.sleep(0.4)  # blocks the loop: a stall any running watchdog reports
            await asyncio.sleep(0.2)
        return dog, running

    return asyncio.run(main())


def test_default_build_has_the_gil() -> None:
    """On this (default) build the GIL is on, so the watchdog runs and reports the stall."""
    assert _gil_disabled() is False
    dog, running = _block_under_watchdog()
    assert running
    assert any(r.duration >= 0.3 for r in dog.records), [r.summary() for r in dog.records]


def test_refuses_without_a_gil(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN an interpreter that says its GIL is disabled WHEN a watchdog starts THEN it does
    not run, warns once with the remedy, and reports nothing (no verdict it cannot back)."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    with caplog.at_level(logging.WARNING, logger="hangdoctor"):
        dog, running = _block_under_watchdog()
    assert not running and not dog.running
    assert list(dog.records) == [] and dog.stalls == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "hangdoctor"]
    assert len(warnings) == 1, warnings
    assert "free-threaded" in warnings[0] and "PYTHON_GIL=1" in warnings[0]


def test_runs_when_the_gil_is_turned_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A free-threaded build run with PYTHON_GIL=1 has its GIL: the watchdog runs there."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    dog, running = _block_under_watchdog()
    assert running and dog.records
