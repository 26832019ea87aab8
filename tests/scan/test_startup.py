"""Startup and shutdown code across modules: shown apart, and out of the exit status."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hangdoctor.cli.main import cli
from hangdoctor.scan import ScanOptions
from tests.scan.conftest import run_scan

Write = Callable[[dict[str, str]], Path]

# a lifespan in one module, its sync and async helpers in others, the app in a third
APP = {
    "app/__init__.py": "",
    "app/models.py": """\
import time


def load_model() -> bytes:
    time.sleep(30)
    return b""
""",
    "app/db.py": """\
import sqlite3


async def create_tables() -> None:
    sqlite3.connect("app.db")


async def migrate() -> None:
    await create_tables()
""",
    "app/life.py": """\
import time
from contextlib import asynccontextmanager

from .db import migrate
from .models import load_model


@asynccontextmanager
async def setup(app):
    load_model()
    await migrate()
    yield
    time.sleep(1)
""",
    "app/main.py": """\
from fastapi import FastAPI

from .life import setup
from .models import load_model

app = FastAPI(lifespan=setup)


@app.get("/predict")
async def predict() -> bytes:
    return load_model()
""",
}


def _phases(root: Path) -> set[tuple[str, int, str, str | None]]:
    result = run_scan([root / "app"], root)
    return {(Path(f.file).name, f.line, f.code, f.phase) for f in result.lifecycle}


def test_lifespan_across_modules(write: Write) -> None:
    """The lifespan registered in another module is found; its call of a sync helper two
    modules away is startup, a coroutine awaited only from it (at any depth) is startup,
    after the `yield` is shutdown; the same helper called from a route is a request hang."""
    root = write(APP)
    result = run_scan([root / "app"], root)
    apart = {(Path(f.file).name, f.line, f.code, f.phase) for f in result.lifecycle}
    assert apart == {
        ("life.py", 10, "HD201", "startup"),
        ("db.py", 5, "HD203", "startup"),
        ("life.py", 13, "HD201", "shutdown"),
    }
    assert [(Path(f.file).name, f.line, f.code) for f in result.findings] == [
        ("main.py", 11, "HD201")
    ]
    assert all(f.phase is None for f in result.findings)


def test_a_coroutine_awaited_by_a_route_too_runs_on_requests(write: Write) -> None:
    """`migrate` awaited from the lifespan and from a route: its blocking call is a hang."""
    files = dict(APP)
    files["app/main.py"] += """

from .db import migrate


@app.post("/migrate")
async def run_migration() -> None:
    await migrate()
"""
    root = write(files)
    result = run_scan([root / "app"], root)
    assert ("db.py", 5, "HD203") in {(Path(f.file).name, f.line, f.code) for f in result.findings}
    assert ("db.py", 5, "HD203", "startup") not in _phases(root)


def test_unregistered_context_manager_is_request_code(write: Write) -> None:
    """Without `lifespan=setup`, `setup` is an ordinary context manager: nothing is apart."""
    files = dict(APP)
    files["app/main.py"] = files["app/main.py"].replace("FastAPI(lifespan=setup)", "FastAPI()")
    root = write(files)
    result = run_scan([root / "app"], root)
    assert result.lifecycle == ()
    assert {(Path(f.file).name, f.line) for f in result.findings} >= {
        ("life.py", 10),
        ("life.py", 13),
    }


def _cli(root: Path, *args: str) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(root)
    try:
        out = CliRunner().invoke(cli, ["scan", "--no-cache", *args], catch_exceptions=False)
    finally:
        os.chdir(old)
    return out.exit_code, out.stdout


def test_exit_status_and_formats(write: Write) -> None:
    """Startup findings alone exit 0 (1 with --fail-on-startup); every format shows them
    apart: a JSON `lifecycle` list with the phase and the reason, a concise `note:` line."""
    files = dict(APP)
    files["app/main.py"] = "from fastapi import FastAPI\n\nfrom .life import setup\n\n"
    files["app/main.py"] += "app = FastAPI(lifespan=setup)\n"
    root = write(files)
    code, out = _run_json(root)
    assert code == 0
    assert out["findings"] == [] and out["exit_code"] == 0
    assert {(Path(e["file"]).name, e["line"], e["phase"]) for e in out["lifecycle"]} == {
        ("life.py", 10, "startup"),
        ("db.py", 5, "startup"),
        ("life.py", 13, "shutdown"),
    }
    assert all("does not hang a request" in e["reason"] for e in out["lifecycle"])
    code, text = _cli(root, "--format", "concise", "app")
    assert code == 0
    assert "app/life.py:10:5: note: HD201 [startup] " in text
    code, _ = _cli(root, "--fail-on-startup", "--format", "concise", "app")
    assert code == 1
    code, text = _cli(root, "--format", "sarif", "app")
    levels = {r["level"] for r in json.loads(text)["runs"][0]["results"]}
    assert code == 0 and levels == {"note"}


def _run_json(root: Path) -> tuple[int, dict[str, Any]]:
    code, text = _cli(root, "--format", "json", "app")
    data = json.loads(text)
    assert isinstance(data, dict)
    return code, data


def test_reused_result_keeps_the_phase(write: Write, tmp_path: Path) -> None:
    """A scan answered whole from the result cache shows the same startup findings apart."""
    root = write(APP)
    cache = tmp_path / "cache"
    cache.mkdir()
    first = run_scan([root / "app"], root, use_cache=True, cache_dir=cache)
    again = run_scan([root / "app"], root, use_cache=True, cache_dir=cache)
    assert again.stats.parsed == 0
    assert again.lifecycle == first.lifecycle and again.findings == first.findings
    strict = run_scan([root / "app"], root, use_cache=True, cache_dir=cache, fail_on_startup=True)
    assert strict.exit_code == 1
    assert isinstance(ScanOptions(fail_on_startup=True).fail_on_startup, bool)
