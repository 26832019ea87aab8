"""Fixtures for the Python 3.14 tests: the root, venvs in it, newsroom servers on 3.14.

The root and its venvs are made once per session and cached between runs (see
tests/py314/root.py); a machine that cannot have them (not root, no apt-get) skips
these tests with the reason, and one that should but fails to build them fails.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.py314.root import (
    INSIDE_REPO,
    REPO,
    Py314Root,
    RootUnavailable,
    ensure_root,
    python_child,
)

from hangdoctor.probe.server import ManagedServer, free_port

# The server stack of the golden captures, so the 3.14 tests and captures run the same code.
NEWSROOM_PACKAGES = (
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "anyio==4.16.0",
    "h11==0.16.0",
    "pydantic==2.14.4",
    # the hang patterns app (tests/runtime/apps/patterns_app.py)
    "httpx==0.29.0",
    "httpcore==1.0.9",
    "SQLAlchemy==2.1.9",
    "greenlet==3.5.6",
    "aiosqlite==0.22.1",
)
NEWSROOM_VENV = "hd-newsroom"
HANGDOCTOR_VENV = "hd-hangdoctor"
CHECKOUT_BIND = f"{REPO}:{INSIDE_REPO}:ro"


@pytest.fixture(scope="session")
def py314_root() -> Py314Root:
    """The cached Debian root with python3.14 (built on first use: ~30 s plus apt-get)."""
    try:
        return ensure_root()
    except RootUnavailable as exc:
        pytest.skip(f"no Python 3.14 root: {exc}")


@pytest.fixture(scope="session")
def newsroom_python(py314_root: Py314Root) -> str:
    """python3.14 of a venv in the root with the newsroom app's server packages."""
    return py314_root.newsroom_venv(NEWSROOM_VENV, NEWSROOM_PACKAGES)


@pytest.fixture(scope="session")
def hangdoctor_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hangdoctor's wheel of this checkout, built once per session (not an editable install),
    beside the hangdoctor-runtime wheel it depends on (`install_wheel` finds it there)."""
    out = tmp_path_factory.mktemp("wheel")
    runtime = REPO / "packaging" / "hangdoctor-runtime"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out)),
            *(str(runtime), str(REPO)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("hangdoctor-*.whl")
    return wheel


@pytest.fixture(scope="session")
def hangdoctor314(py314_root: Py314Root, hangdoctor_wheel: Path) -> str:
    """The `hangdoctor` console script of that wheel installed on 3.14 inside the root."""
    python = py314_root.install_wheel(HANGDOCTOR_VENV, hangdoctor_wheel)
    return str(Path(python).parent / "hangdoctor")


@dataclass
class Target:
    """A server running inside the root: `server` is the wrapper, `pid` its python3.14."""

    server: ManagedServer
    pid: int

    @property
    def base_url(self) -> str:
        return self.server.base_url


Start314 = Callable[..., Target]


def uvicorn_argv(python: str, port: int, app: str = "api.main:app") -> list[str]:
    """uvicorn serving the newsroom app from the bind-mounted checkout, as seen inside."""
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        "examples/newsroom",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]


@pytest.fixture
def start314(py314_root: Py314Root, newsroom_python: str) -> Iterator[Start314]:
    """Start newsroom servers under python3.14 in the root; each is stopped at teardown.

    `argv(python, port)` builds the command run inside (default: plain uvicorn); the
    checkout is mounted read-only at /srv/hangdoctor, the server's working directory.
    """
    started: list[ManagedServer] = []

    def start(
        argv: Callable[[str, int], list[str]] | None = None,
        *,
        binds: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Target:
        port = free_port()
        inner = (argv or uvicorn_argv)(newsroom_python, port)
        server = ManagedServer(
            py314_root.run_argv(inner, binds=(CHECKOUT_BIND, *binds), wd=INSIDE_REPO),
            base_url=f"http://127.0.0.1:{port}",
            env={"NEWSROOM_UPSTREAM_DELAY": "20", "PYTHONUNBUFFERED": "1", **(env or {})},
            ready_timeout=60.0,
        )
        started.append(server)
        server.start()
        return Target(server, python_child(server.pid))

    yield start
    for server in started:
        server.stop(grace=1.0)
