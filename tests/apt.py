"""Debian packages the suite needs, installed by the suite itself on a fresh machine.

`.ci/run` starts from a clean checkout on a machine with nothing added by hand:
a test that needs a tool (Chromium, capsh, unshare) installs its package with
apt-get when it runs as root, once per package and process, under a lock so
parallel runs do not race apt's own lock. Without root it skips and says what
to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

__all__ = ["INSTALL_TIMEOUT_S", "install", "need_tools"]

INSTALL_TIMEOUT_S = 600.0
_LOCK = Path(tempfile.gettempdir()) / "hangdoctor-apt-install.lock"
_failed: dict[tuple[str, ...], str] = {}  # one failed install per process is enough


def need_tools(tools: Mapping[str, str]) -> None:
    """Every tool (name -> the Debian package holding it) on PATH: installed if missing.

    Skips without root (nothing can be installed), fails when apt-get fails.
    """
    missing = {tool: package for tool, package in tools.items() if shutil.which(tool) is None}
    if not missing:
        return
    packages = tuple(sorted(set(missing.values())))
    if os.geteuid() != 0:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install {' '.join(packages)})")
    error = install(packages, ready=lambda: all(shutil.which(t) for t in missing))
    if error:
        pytest.fail(f"Could not install {' '.join(packages)}: {error}")
    still = [tool for tool in missing if shutil.which(tool) is None]
    if still:
        pytest.fail(f"apt-get installed {' '.join(packages)} but {', '.join(still)} is missing")


def install(packages: tuple[str, ...], *, ready: object = None) -> str:
    """apt-get install `packages` (as root), under the lock; '' on success, else what failed.

    `ready()`, when given, is checked once the lock is held: another run may have
    installed them meanwhile.
    """
    if packages in _failed:
        return _failed[packages]
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    with open(_LOCK, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return f"another process held {_LOCK} for {INSTALL_TIMEOUT_S:.0f} s"
                time.sleep(1.0)
        try:
            if callable(ready) and ready():
                return ""
            for cmd in (
                ("apt-get", "update"),
                ("apt-get", "install", "-y", "--no-install-recommends", *packages),
            ):
                error = _run(cmd, deadline)
                if error:
                    _failed[packages] = error
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
