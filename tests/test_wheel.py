"""hangdoctor installed from its wheel, not from the checkout: what a user runs.

The wheel is built from this checkout and installed with the `demo` extra into a fresh
venv; the demo then runs from there, where the example app sits inside hangdoctor's own
package (`site-packages/hangdoctor/_examples/newsroom`), and `watch` runs a server of
another venv, where hangdoctor's site-packages hold rich, click and libcst beside it.
"""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.schemas import SCHEMAS
from tests.wheel import bare_venv, build_wheel, install_wheel, venv_env

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 240.0  # about 15 s when the machine is quiet
PLAIN_SERVER = Path(__file__).parent / "runtime" / "apps" / "plain_server.py"


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
        "hangdoctor/report/assets/report.css",  # the HTML report's stylesheet
        *(f"hangdoctor/schemas/{name}.json" for name in SCHEMAS),  # `hangdoctor schema NAME`
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


def _origins(python: Path, *names: str) -> list[str | None]:
    code = "import importlib.util as u, sys\nfor n in sys.argv[1:]: print(u.find_spec(n))"
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60, check=True
    )
    return [None if x == "None" else x for x in done.stdout.splitlines()]


def test_watch_gives_a_server_of_another_venv_hangdoctor_alone(
    installed: Path, tmp_path: Path
) -> None:
    """Watched, a server whose venv lacks rich, click and libcst still cannot import them.

    watch put its own whole site-packages on the server's sys.path: a watched server
    imported rich, which its own venv does not have. The server's own packages still win.
    """
    python = bare_venv(tmp_path / "server-venv")
    site = next((tmp_path / "server-venv" / "lib").glob("python*/site-packages"))
    (site / "click.py").write_text("WHO = 'the server'\n", encoding="utf-8")  # its own "click"
    # the premise: on its own, the server's venv has none of hangdoctor's dependencies
    assert _origins(python, "rich", "libcst", "hangdoctor") == [None, None, None]
    assert None not in _origins(installed / "bin" / "python", "rich", "libcst", "click")
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    argv = [str(installed / "bin" / "hangdoctor"), "watch", "--threshold", "0.2", "--out"]
    argv += [str(out), "--", str(python), str(PLAIN_SERVER), str(port)]
    with ManagedServer(
        argv, base_url=f"http://127.0.0.1:{port}", env=venv_env(installed), ready_timeout=40.0
    ) as server:
        got = httpx.get(f"{server.base_url}/imports", timeout=10).json()
        assert got["hook"] == "set_running_loop", got  # the watchdog hook is in
        assert Path(got["hangdoctor"]).is_relative_to(installed), got  # watch's hangdoctor
        assert got["rich"] is None and got["libcst"] is None, got
        assert got["click"] == str(site / "click.py"), got  # the server's own, not watch's
        # and the watchdog works there: the stall is recorded
        assert httpx.get(f"{server.base_url}/sleep", timeout=20).status_code == 200
        deadline = time.monotonic() + 15
        while not out.read_text(encoding="utf-8").strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert '"function":"_blocking_call"' in out.read_text(encoding="utf-8")
