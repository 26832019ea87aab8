"""hangdoctor as a user gets it: a wheel built from this checkout, installed into a fresh venv.

The editable install the suite runs from hides what only a wheel shows: files that are
not packaged, and paths that differ (the example app lives inside the hangdoctor package,
`site-packages/hangdoctor/_examples/newsroom`). `build_wheels` builds both distributions
(hangdoctor and the hangdoctor-runtime it depends on) the way a user would (`pip wheel`,
with the build backend fetched from PyPI); `install_wheel` puts one with its dependencies
into a new venv of any Python. Every step has a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

__all__ = [
    "BUILD_TIMEOUT_S",
    "INSTALL_TIMEOUT_S",
    "bare_venv",
    "build_wheels",
    "install_wheel",
    "runtime_wheel",
    "venv_env",
]

BUILD_TIMEOUT_S = 300.0  # pip fetches the build backend (hatchling) from PyPI
INSTALL_TIMEOUT_S = 600.0  # the dependencies come from PyPI too (pip's cache makes it ~15 s)


def _run(argv: list[str], timeout: float, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


RUNTIME_PROJECT = ROOT / "packaging" / "hangdoctor-runtime"


def build_wheels(tmp_dir: Path) -> Path:
    """Build both distributions from this checkout into `tmp_dir`; the `hangdoctor` wheel.

    hangdoctor depends on hangdoctor-runtime (the in-process part, its own wheel), which
    is on no index: installs find it in `tmp_dir` (`--find-links`), as they would on PyPI.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(tmp_dir),
            str(RUNTIME_PROJECT),
            str(ROOT),
        ],
        BUILD_TIMEOUT_S,
        "pip wheel",
    )
    wheels = sorted(tmp_dir.glob("hangdoctor-*.whl"))
    assert len(wheels) == 1, wheels
    assert len(list(tmp_dir.glob("hangdoctor_runtime-*.whl"))) == 1, list(tmp_dir.iterdir())
    return wheels[0]


def runtime_wheel(tmp_dir: Path) -> Path:
    """The hangdoctor-runtime wheel `build_wheels` put into `tmp_dir`."""
    (wheel,) = tmp_dir.glob("hangdoctor_runtime-*.whl")
    return wheel


def install_wheel(
    wheel: Path,
    venv: Path,
    *,
    python: str = sys.executable,
    extras: str = "demo",
    also: tuple[str, ...] = (),
) -> Path:
    """A new venv at `venv` (made by `python`) with `wheel[extras]` installed; its python.

    Wheels beside `wheel` (hangdoctor-runtime) satisfy its dependencies first; `also`
    names more requirements to install in the same step.
    """
    _run([python, "-m", "venv", str(venv)], 120.0, "python -m venv")
    bin_python = venv / "bin" / "python"
    name = "hangdoctor_runtime" if wheel.name.startswith("hangdoctor_runtime-") else "hangdoctor"
    requirement = f"{name}[{extras}] @ {wheel.resolve().as_uri()}" if extras else str(wheel)
    _run(
        [
            str(bin_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--find-links",
            str(wheel.parent),
            requirement,
            *also,
        ],
        INSTALL_TIMEOUT_S,
        "pip install of the wheel",
    )
    return bin_python


def bare_venv(venv: Path, *, python: str = sys.executable) -> Path:
    """A venv with nothing installed, not even pip (a server's own environment); its python."""
    _run([python, "-m", "venv", "--without-pip", str(venv)], 120.0, "python -m venv")
    return venv / "bin" / "python"


def venv_env(venv: Path) -> dict[str, str]:
    """An environment that runs the venv's own programs and nothing of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env
