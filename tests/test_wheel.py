"""hangdoctor installed from its wheel, not from the checkout: what a user runs.

The wheel is built from this checkout and installed with the `demo` extra into a fresh
venv; the demo then runs from there, where the example app sits inside hangdoctor's own
package (`site-packages/hangdoctor/_examples/newsroom`), and `watch` runs a server of
another venv, where hangdoctor's site-packages hold rich, click and libcst beside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.schemas import SCHEMAS
from tests.wheel import bare_venv, build_wheels, install_wheel, runtime_wheel, venv_env

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 240.0  # about 15 s when the machine is quiet
PLAIN_SERVER = Path(__file__).parent / "runtime" / "apps" / "plain_server.py"
RUNTIME_ONLY_APP = Path(__file__).parent / "runtime" / "apps" / "runtime_only_app.py"
# a production image: hangdoctor-runtime beside the server, and pytest for the plugin
RUNTIME_IMAGE_PACKAGES = ("uvicorn>=0.23", "pytest>=8.0", "pytest-asyncio>=0.23")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hangdoctor's wheel, built once per session from this checkout."""
    return build_wheels(tmp_path_factory.mktemp("wheel"))


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


def _wheel_contents(wheel: Path) -> tuple[set[str], str, str]:
    """The files of a wheel, its entry_points.txt and its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/", 1)[0] for n in names if ".dist-info/" in n)
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode("utf-8")
        metadata = zf.read(f"{dist_info}/METADATA").decode("utf-8")
    return {n for n in names if ".dist-info/" not in n}, entry_points, metadata


def test_wheels_hold_what_an_installation_needs(wheel: Path) -> None:
    """The example app, watch's start-up hook, py.typed and both entry points are packaged;
    each file in exactly one of the two wheels, the runtime's in hangdoctor-runtime."""
    tool, tool_entry_points, tool_metadata = _wheel_contents(wheel)
    runtime, runtime_entry_points, runtime_metadata = _wheel_contents(runtime_wheel(wheel.parent))
    assert not tool & runtime, sorted(tool & runtime)  # no file is overwritten by the other
    example = "hangdoctor/_examples/newsroom/api/"
    for needed in (
        f"{example}main.py",
        f"{example}routes/stream.py",
        f"{example}routes/stream_fixed.py",
        "hangdoctor/report/assets/report.css",  # the HTML report's stylesheet
        *(f"hangdoctor/schemas/{name}.json" for name in SCHEMAS),  # `hangdoctor schema NAME`
        "hangdoctor/cli/main.py",
    ):
        assert needed in tool, needed
    for needed in (
        "hangdoctor/__init__.py",
        "hangdoctor/runtime/_inject/sitecustomize.py",
        "hangdoctor/runtime/watchdog.py",
        "hangdoctor/executors.py",
        "hangdoctor/pytest_plugin.py",
        "hangdoctor/catalog/__init__.py",
        "hangdoctor/py.typed",
    ):
        assert needed in runtime, needed
    for names in (tool, runtime):
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "hangdoctor = hangdoctor.cli.main:entry" in tool_entry_points
    assert "hangdoctor = hangdoctor.pytest_plugin" in runtime_entry_points
    assert "pytest11" not in tool_entry_points  # registered twice, pytest would refuse it
    assert "Requires-Dist: hangdoctor-runtime==0.1.0" in tool_metadata
    assert "Provides-Extra: demo" in tool_metadata
    assert "Provides-Extra: prometheus" in runtime_metadata
    requires = [x for x in runtime_metadata.splitlines() if x.startswith("Requires-Dist:")]
    assert requires and all("; extra ==" in x for x in requires), requires  # stdlib only


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


def _isolated(target: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This Python with no site-packages (`-S`): only the standard library and `target`."""
    return subprocess.run(
        [sys.executable, "-S", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(target)},
        cwd=str(cwd),
    )


_STALL_SCRIPT = """\
import asyncio, importlib, json, pathlib, sys, time
import hangdoctor
from hangdoctor.runtime import LoopWatchdog

package = pathlib.Path(hangdoctor.__file__).parent
needs_extra = {}
for path in sorted(package.rglob("*.py")):
    parts = path.relative_to(package.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    if name in ("hangdoctor.__main__", "hangdoctor.runtime._inject.sitecustomize"):
        continue
    try:
        importlib.import_module(name)
    except ImportError as exc:
        needs_extra[name] = exc.name

async def main():
    async with LoopWatchdog(threshold=0.1, log=False) as dog:
        await asyncio.sleep(0.05)
        time.sleep(0.4)  # the stall
        await asyncio.sleep(0.05)
    return [r.to_dict() for r in dog.records]

print(json.dumps({"records": asyncio.run(main()), "needs_extra": needs_extra}))
"""


def test_runtime_wheel_alone_needs_only_the_standard_library(wheel: Path, tmp_path: Path) -> None:
    """hangdoctor-runtime installed by itself brings no other package, every module of it
    imports with the standard library alone (metrics and otel say which extra they need),
    the watchdog names a stall's line, and `python -m hangdoctor` says the CLI is absent."""
    target = tmp_path / "site"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-index", "--target", str(target), str(runtime_wheel(wheel.parent))),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    installed = sorted(p.name for p in target.iterdir() if p.name != "__pycache__")
    assert installed == ["hangdoctor", "hangdoctor_runtime-0.1.0.dist-info"], installed
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    assert size < 5 << 20, size  # docs/install.md: about 1.1 MB, against 33 MB for the tool

    script = tmp_path / "stall.py"
    script.write_text(_STALL_SCRIPT, encoding="utf-8")
    ran = _isolated(target, str(script), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    got = json.loads(ran.stdout)
    assert got["needs_extra"] == {
        "hangdoctor.pytest_plugin": "pytest",  # loaded by pytest only
        "hangdoctor.runtime.metrics": "prometheus_client",
        "hangdoctor.runtime.otel": "opentelemetry",
    }, got["needs_extra"]
    (record,) = got["records"]
    line = _STALL_SCRIPT.splitlines().index("        time.sleep(0.4)  # the stall") + 1
    assert (record["code"], Path(record["file"]).name, record["line"]) == (
        "HD201",
        "stall.py",
        line,
    ), record

    cli = _isolated(target, "-m", "hangdoctor", "--help", cwd=tmp_path)
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "Traceback" not in cli.stderr
    assert cli.stderr.startswith("hangdoctor: the command line is not installed here"), cli.stderr


@pytest.fixture(scope="module")
def runtime_image(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv as a production image has it: hangdoctor-runtime, a server and pytest."""
    venv = tmp_path_factory.mktemp("runtime-venv") / "venv"
    install_wheel(runtime_wheel(wheel.parent), venv, extras="", also=RUNTIME_IMAGE_PACKAGES)
    return venv


def test_runtime_image_middleware_reports_the_stall_under_uvicorn(
    runtime_image: Path, tmp_path: Path
) -> None:
    """The middleware in a venv without hangdoctor's CLI: a real uvicorn, a real request."""
    out = tmp_path / "stalls.jsonl"
    port = free_port()
    argv = [str(runtime_image / "bin" / "uvicorn"), "runtime_only_app:app", "--port", str(port)]
    argv += ["--app-dir", str(RUNTIME_ONLY_APP.parent)]
    env = {**venv_env(runtime_image), "HANGDOCTOR_TEST_OUT": str(out)}
    with ManagedServer(
        argv, base_url=f"http://127.0.0.1:{port}", env=env, ready_timeout=40.0
    ) as server:
        imports = httpx.get(f"{server.base_url}/imports", timeout=10).json()
        assert imports["rich"] is None and imports["libcst"] is None, imports
        assert imports["py_spy"] is None, imports
        assert "hangdoctor.cli" not in imports["hangdoctor_modules"], imports
        assert httpx.get(f"{server.base_url}/block", timeout=20).status_code == 200
        deadline = time.monotonic() + 15
        while not (out.is_file() and out.read_text(encoding="utf-8").strip()):
            assert time.monotonic() < deadline, "no stall record within 15 s"
            time.sleep(0.1)
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    source = RUNTIME_ONLY_APP.read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(source, 1) if "# runtime-only: blocks" in text)
    assert (record["code"], record["line"]) == ("HD201", line), record
    assert record["request"]["path"] == "/block", record
    assert not (runtime_image / "bin" / "hangdoctor").exists()  # the CLI is not installed


def test_runtime_image_pytest_plugin_fails_a_blocking_test(
    runtime_image: Path, tmp_path: Path
) -> None:
    """The pytest plugin comes with hangdoctor-runtime: registered, and it works there."""
    (tmp_path / "test_blocks.py").write_text(
        "import time\n\nimport pytest\n\n\n@pytest.mark.asyncio\n"
        "async def test_blocks():\n    time.sleep(0.3)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            *(str(runtime_image / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider"),
            *("--hangdoctor-threshold", "0.1", "test_blocks.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=venv_env(runtime_image),
        cwd=str(tmp_path),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout, done.stdout
    assert "HD201" in done.stdout and "test_blocks.py:8" in done.stdout, done.stdout
