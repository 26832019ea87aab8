"""HD206 on `with lock:`: a lock held briefly everywhere is no finding, one held long is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig, ScanOptions, scan_paths
from tests.scan.conftest import installed, run_scan

Write = Callable[[dict[str, str]], Path]

LOCKS = {
    "pkg/__init__.py": "",
    "pkg/locks.py": "import threading\n\nregistry_lock = threading.Lock()\nREGISTRY = {}\n",
    "pkg/routes.py": """\
from .locks import REGISTRY, registry_lock


async def lookup(name):
    with registry_lock:
        return REGISTRY.get(name)
""",
    "pkg/worker.py": """\
from .locks import REGISTRY, registry_lock


def register(name, value):
    with registry_lock:
        REGISTRY[name] = value
""",
}


def _hd206(root: Path) -> list[tuple[str, int, str]]:
    result = run_scan([root / "pkg"], root)
    return [(Path(f.file).name, f.line, f.message) for f in result.findings if f.code == "HD206"]


def test_imported_lock_held_briefly_everywhere_is_not_reported(write: Write) -> None:
    assert _hd206(write(LOCKS)) == []


def test_imported_lock_held_across_io_in_another_module_is_reported(write: Write) -> None:
    """The worker holds the lock across a network call: the route waits for that call."""
    files = dict(LOCKS)
    files["pkg/worker.py"] = """\
import requests

from .locks import REGISTRY, registry_lock


def refresh(name):
    with registry_lock:
        REGISTRY[name] = requests.get("http://upstream/" + name).json()
"""
    found = _hd206(write(files))
    assert len(found) == 1
    name, line, message = found[0]
    assert (name, line) == ("routes.py", 5)
    assert "held across `requests.get`" in message and "worker.py:7" in message


def test_fastapi_and_anyio_short_sections_are_gone() -> None:
    """The reviewed alarms: anyio's `get_selector()` holds its lock for a check and an
    assignment (gone); fastapi's telemetry lock is held long, but only when the ASGI
    lifespan starts (shown apart, as startup); anyio's `thread.join()` stays."""
    fastapi, anyio = installed("fastapi"), installed("anyio")
    if fastapi is None or anyio is None:
        pytest.skip("fastapi and anyio are not installed")
    site = fastapi.parent
    result = scan_paths(
        [fastapi, anyio], ScanOptions(use_cache=False), ScanConfig(root=site), cwd=site
    )
    requests = {(f.file, f.code) for f in result.findings if f.code == "HD206"}
    assert not any("get_selector" in f.message for f in result.findings)
    assert ("anyio/_backends/_asyncio.py", "HD206") in requests
    telemetry = [f for f in result.findings if f.file == "fastapi/telemetry/_runtime.py"]
    assert telemetry == []
    if (fastapi / "telemetry" / "_runtime.py").exists():
        apart = {(f.file, f.code, f.phase) for f in result.lifecycle}
        assert ("fastapi/telemetry/_runtime.py", "HD206", "startup") in apart
