"""Python 3.14 from Debian's packages, in a root that `scripts/py314-root` builds and caches.

The tests and `tests/data/golden/generate.py` share this module: it builds (or reuses)
the root, makes venvs inside it that survive between runs (complete ones only: a
stamp file is written last), starts servers in it and runs commands in a target's
own mount namespace, as `kubectl exec` would. Everything runs as root: debootstrap,
chroot, mount and nsenter need it; `ensure_root` says why it cannot when it cannot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hangdoctor.capture.procs import children

__all__ = [
    "INSIDE_REPO",
    "REPO",
    "SCRIPT",
    "Py314Root",
    "RootUnavailable",
    "ensure_root",
    "python_child",
]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "py314-root"
INSIDE_REPO = "/srv/hangdoctor"  # where the checkout is bind-mounted (read-only) inside
PYTHON = "/usr/bin/python3.14"
BUILD_TIMEOUT_S = 1200.0  # apt-get install debootstrap + debootstrap (~30 s on a good day)
PIP_TIMEOUT_S = 900.0
# Inside the root, only the root's own folders: the host's venv, TMPDIR or pip find-links
# would name paths that do not exist there.
_HOST_ONLY = ("TMPDIR", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_FIND_LINKS")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RootUnavailable(Exception):
    """The root cannot be had on this machine (not root, no apt-get, no unshare): skip."""


@dataclass(frozen=True)
class Py314Root:
    """A complete Python 3.14 root on disk, and how to run things in it."""

    path: Path
    python_version: str  # e.g. "3.14.8"
    suite: str  # the Debian suite it came from

    def run_argv(
        self, argv: Sequence[str], *, binds: Sequence[str] = (), wd: str = "/"
    ) -> list[str]:
        """`argv` run inside the root in a private mount namespace (see scripts/py314-root)."""
        out = [str(SCRIPT), "run"]
        for bind in binds:
            out += ["--bind", bind]
        return [*out, "--wd", wd, "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        binds: Sequence[str] = (),
        wd: str = "/",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the root to completion (bounded by `timeout`)."""
        proc = subprocess.run(
            self.run_argv(argv, binds=binds, wd=wd),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed in the 3.14 root ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc

    def venv(self, name: str, requirements: Sequence[str]) -> str:
        """A venv /opt/NAME inside the root with `requirements` from PyPI; its python's path.

        Reused when its stamp matches the requirements; otherwise made anew (a half-made
        one has no stamp, so it is never reused).
        """
        inside = f"/opt/{name}"
        stamp = self.path / inside.lstrip("/") / ".hangdoctor-venv-ready"
        key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
        if stamp.is_file() and stamp.read_text() == key:
            return f"{inside}/bin/python"
        shutil.rmtree(self.path / inside.lstrip("/"), ignore_errors=True)
        self.run([PYTHON, "-m", "venv", inside], timeout=300)
        if requirements:
            self.run(
                [f"{inside}/bin/pip", "install", "--quiet", *requirements],
                timeout=PIP_TIMEOUT_S,
            )
        stamp.write_text(key)
        return f"{inside}/bin/python"

    def newsroom_venv(self, name: str, requirements: Sequence[str]) -> str:
        """`venv` for the newsroom app, which imports `hangdoctor.executors` (`safe_app`):
        a .pth puts the checkout's src/, mounted at INSIDE_REPO, on its path, as the host
        suite's editable install does."""
        python = self.venv(name, requirements)
        site = self.path / f"opt/{name}/lib/python3.14/site-packages"
        (site / "hangdoctor-checkout.pth").write_text(f"{INSIDE_REPO}/src\n")
        return python

    def install_wheel(self, name: str, wheel: Path, extra: str = "") -> str:
        """Install a wheel built on the host (with its dependencies) into /opt/NAME.

        Wheels beside it (hangdoctor-runtime, which hangdoctor depends on and no index
        has) are found there (`--find-links`)."""
        python = self.venv(name, ())
        binds = [f"{wheel.parent}:/mnt/wheels:ro"]
        target = f"/mnt/wheels/{wheel.name}{extra}"
        pip = f"/opt/{name}/bin/pip"
        siblings = sorted(f"/mnt/wheels/{w.name}" for w in wheel.parent.glob("*.whl"))
        # --force-reinstall --no-deps: the same version number with new code is still new
        self.run(
            [pip, "install", "--quiet", "--force-reinstall", "--no-deps", *siblings],
            timeout=PIP_TIMEOUT_S,
            binds=binds,
        )
        self.run(
            [pip, "install", "--quiet", "--find-links", "/mnt/wheels", target],
            timeout=PIP_TIMEOUT_S,
            binds=binds,
        )
        return python

    def nsenter_argv(self, pid: int, argv: Sequence[str]) -> list[str]:
        """`argv` run in `pid`'s mount namespace, root and cwd: what `kubectl exec` gives."""
        unset = [x for name in _HOST_ONLY for x in ("-u", name)]
        return [
            "nsenter",
            f"--target={pid}",
            "--mount",
            "--root",
            "--wd",
            "--",
            "/usr/bin/env",
            *unset,
            f"PATH={_PATH}",
            "HOME=/root",
            *argv,
        ]


def ensure_root() -> Py314Root:
    """Build or reuse the cached root; RootUnavailable when this machine cannot have one."""
    if os.geteuid() != 0:
        raise RootUnavailable(
            "the Python 3.14 root needs root (debootstrap, chroot, mount): "
            "run the suite as root, or build it with `sudo scripts/py314-root build`"
        )
    missing = [t for t in ("unshare", "nsenter", "chroot", "mount", "flock") if not shutil.which(t)]
    if missing:
        raise RootUnavailable(f"{', '.join(missing)} not found (apt-get install util-linux)")
    if not shutil.which("debootstrap") and not shutil.which("apt-get"):
        raise RootUnavailable("debootstrap is not installed and there is no apt-get to get it")
    proc = subprocess.run(
        [str(SCRIPT), "build"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/py314-root build failed:\n{proc.stderr[-3000:]}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    facts = dict(
        line.split("=", 1)
        for line in (path / ".hangdoctor-root-ready").read_text().splitlines()
        if "=" in line
    )
    return Py314Root(path, facts["python"], facts["suite"])


def python_child(pid: int, timeout: float = 10.0) -> int:
    """The python3.14 process under `pid` (unshare -> chroot -> python): the real target."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            if child.exe and os.path.basename(child.exe).startswith("python3"):
                return child.pid
        time.sleep(0.05)
    raise RuntimeError(f"no python3.14 process appeared under pid {pid} in {timeout:g} s")
