"""hangdoctor installed from its wheel, not from the checkout: what a user runs.

The wheel is built from this checkout and installed with the `demo` extra into a fresh
venv; the demo then runs from there, where the example app sits inside hangdoctor's own
package (`site-packages/hangdoctor/_examples/newsroom`).
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wheel import build_wheel, install_wheel, venv_env

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 240.0  # about 15 s when the machine is quiet


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hangdoctor's wheel, built once per session from this checkout."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel and its `demo` extra installed; the venv's directory."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    install_wheel(wheel, venv)
    yield venv


def _package_dir(venv: Path) -> Path:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import hangdoctor; print(hangdoctor.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=venv_env(venv),
        cwd=str(venv),
    )
    return Path(done.stdout.strip()).parent


def test_wheel_holds_what_an_installation_needs(wheel: Path) -> None:
    """The example app, watch's start-up hook, py.typed and both entry points are packaged."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/", 1)[0] for n in names if ".dist-info/" in n)
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode("utf-8")
        metadata = zf.read(f"{dist_info}/METADATA").decode("utf-8")
    example = "hangdoctor/_examples/newsroom/api/"
    for needed in (
        f"{example}main.py",
        f"{example}routes/stream.py",
        f"{example}routes/stream_fixed.py",
        "hangdoctor/runtime/_inject/sitecustomize.py",
        "hangdoctor/py.typed",
        "hangdoctor/cli/main.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "hangdoctor = hangdoctor.cli.main:entry" in entry_points
    assert "hangdoctor = hangdoctor.pytest_plugin" in entry_points
    assert "Provides-Extra: demo" in metadata


def test_demo_from_the_wheel_names_the_examples_line(installed: Path) -> None:
    """`hangdoctor demo` from a wheel catches HD101 at the example's own `with` line.

    Installed, the example lives inside the hangdoctor package, which the analysis folds
    away as library code: the verdict then named asyncio's `threading.py:1139`.
    """
    package = _package_dir(installed)
    assert package.is_relative_to(installed), package  # the wheel's copy, not the checkout
    stream = package / "_examples" / "newsroom" / "api" / "routes" / "stream.py"
    lines = stream.read_text(encoding="utf-8").splitlines()
    line = next(
        n for n, text in enumerate(lines, 1) if text.strip().startswith("with ThreadPoolExecutor(")
    )
    done = subprocess.run(
        [str(installed / "bin" / "hangdoctor"), "demo"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
        env={**venv_env(installed), "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=str(installed),
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(rf"\bapi/routes/stream\.py:{line}\b", out), out
    done_line = next(x for x in out.splitlines() if x.startswith("Done:"))
    assert re.search(rf"caught live as HD101 at stream\.py:{line}\b", done_line), done_line
