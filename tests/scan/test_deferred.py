"""Deferred analysis: a file with no async code is parsed, and analysed only when the search
needs it; the findings are those of analysing every file up front (`ScanOptions.defer`)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig, ScanOptions, ScanResult, scan_paths
from hangdoctor.scan.files import may_matter
from hangdoctor.scan.knowledge import build_knowledge
from tests.scan.conftest import DATA, ROOT, installed, run_scan

Write = Callable[[dict[str, str]], Path]

REAL = ["fastapi", "starlette", "uvicorn", "httpx", "httpcore", "anyio", "aiohttp", "sqlalchemy"]


def _seen(result: ScanResult) -> tuple[object, ...]:
    """Everything a report shows of a scan."""
    return (
        result.findings,
        result.lifecycle,
        result.steps,
        result.problems,
        result.stats.files,
        result.stats.lines,
    )


def _both(root: Path, paths: list[Path] | None = None, **options: object) -> ScanResult:
    """The deferred scan of `paths` (default: `root`), checked against the whole one."""
    deferred = run_scan(paths or [root], root, **options)
    whole = run_scan(paths or [root], root, defer=False, **options)
    assert _seen(deferred) == _seen(whole)
    return deferred


@pytest.mark.parametrize("name", REAL)
def test_real_packages_give_the_same_findings(name: str) -> None:
    folder = installed(name)
    if folder is None:
        pytest.skip(f"{name} is not installed")
    config = ScanConfig(root=folder.parent)
    seen = []
    for defer in (True, False):
        options = ScanOptions(use_cache=False, defer=defer)
        seen.append(_seen(scan_paths([folder], options, config, cwd=folder.parent)))
    assert seen[0] == seen[1]


def test_the_evaluation_files_and_examples_give_the_same_findings() -> None:
    result = _both(ROOT, [DATA, ROOT / "examples"])
    assert result.findings  # the evaluation files are full of findings


CHAIN = {
    "app/__init__.py": "",
    "app/routes.py": """\
from app import helpers


async def get_user(uid):
    return helpers.load(uid)


async def get_store():
    return helpers.Store().fetch()
""",
    "app/helpers.py": """\
from app.net import Client, fetch


def load(uid):
    return fetch(f"http://users/{uid}")


class Store(Client):
    pass
""",
    "app/net.py": """\
import requests


def fetch(url):
    return requests.get(url, timeout=5)


class Client:
    def fetch(self):
        return fetch("http://store")
""",
    "app/unused.py": """\
import time


def nap():
    time.sleep(1)
""",
}


def test_a_chain_through_two_files_without_async_code(write: Write) -> None:
    """routes -> helpers.load -> net.fetch -> requests.get, and a method inherited from a
    class in a third file: both analysed on demand, two hops deep."""
    result = _both(write(CHAIN))
    found = {(Path(f.file).name, f.line, f.code, f.chain) for f in result.findings}
    assert ("routes.py", 5, "HD202", ("get_user", "load", "fetch", "requests.get")) in found
    assert any(f[:3] == ("routes.py", 9, "HD202") for f in found)
    assert result.stats.files == result.stats.parsed == 5


LIFESPAN = {
    "svc/__init__.py": "",
    "svc/main.py": """\
from fastapi import FastAPI

from svc.life import run_app
from svc.urls import routes

app = FastAPI(lifespan=run_app, routes=routes)
""",
    "svc/life.py": """\
import time
from contextlib import asynccontextmanager

from svc.jobs import warm


@asynccontextmanager
async def run_app(app):
    time.sleep(1)
    await warm()
    yield
""",
    "svc/jobs.py": """\
import time


async def warm():
    time.sleep(2)


async def prime():
    time.sleep(3)


async def boot():
    await prime()
""",
    "svc/urls.py": """\
from starlette.routing import Route

from svc.jobs import warm

routes = [Route("/warm", warm)]
""",
}


def test_phases_registered_and_escaped_in_files_without_async_code(write: Write) -> None:
    """The lifespan is registered in main.py, and `warm` (awaited only at startup) is also
    a route in urls.py: neither file has async code, and both decide a phase."""
    result = _both(write(LIFESPAN))
    lifecycle = {(Path(f.file).name, f.line, f.phase) for f in result.lifecycle}
    requests = {(Path(f.file).name, f.line) for f in result.findings}
    assert ("life.py", 9, "startup") in lifecycle
    assert ("jobs.py", 5) in requests  # a route too: it runs on requests


def test_a_stream_handed_over_in_a_file_without_async_code(write: Write) -> None:
    files = {
        "web/__init__.py": "",
        "web/feed.py": """\
import asyncio


async def ticks():
    while True:
        yield "tick"
        await asyncio.sleep(1)
""",
        "web/views.py": """\
from starlette.responses import StreamingResponse

from web.feed import ticks


def stream(request):
    return StreamingResponse(ticks())
""",
    }
    result = _both(write(files))
    assert [(Path(f.file).name, f.code) for f in result.findings] == [("feed.py", "HD301")]


def test_a_thread_lock_held_long_in_a_file_without_async_code(write: Write) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/state.py": "import threading\n\nlock = threading.Lock()\n",
        "pkg/api.py": """\
from pkg.state import lock


async def read():
    with lock:
        return 1
""",
        "pkg/batch.py": """\
import time

from pkg import state


def rebuild():
    with state.lock:
        time.sleep(30)
""",
    }
    result = _both(write(files))
    assert [(Path(f.file).name, f.code) for f in result.findings] == [("api.py", "HD206")]
    assert "batch.py:7" in result.findings[0].message


def test_the_cache_keeps_deferred_files_and_their_later_analysis(write: Write) -> None:
    """The first run caches some files unanalysed; a run that then needs one (its caller
    changed) analyses it, and a whole run from the same cache agrees."""
    root = write(CHAIN)
    cache = root / "cache"
    first = run_scan([root], root, use_cache=True, cache_dir=cache)
    routes = root / "app" / "routes.py"
    routes.write_text(
        routes.read_text(encoding="utf-8") + "\n\nasync def nap():\n    from app import unused\n"
        "    unused.nap()\n",
        encoding="utf-8",
    )
    second = run_scan([root], root, use_cache=True, cache_dir=cache)
    assert second.stats.cached == 4 and second.stats.parsed == 1
    assert len(second.findings) == len(first.findings) + 1
    assert any(f.chain == ("nap", "nap", "time.sleep") for f in second.findings)
    whole = run_scan([root], root, use_cache=True, cache_dir=cache, defer=False)
    assert _seen(whole)[:4] == _seen(second)[:4]


def test_a_file_that_does_not_parse_is_reported_without_async_code(write: Write) -> None:
    root = write({"pkg/__init__.py": "", "pkg/broken.py": "def f(:\n    pass\n"})
    result = _both(root)
    assert [(Path(p.path).name, p.line) for p in result.errors] == [("broken.py", 1)]


@pytest.mark.parametrize(
    ("text", "matters"),
    [
        ("async def f():\n    pass\n", True),
        ("def f():\n    return await_all()\n", False),
        ("x = 1  # see asyncio\n", False),
        ("async \\\n  def f(): pass\n", True),
        ("def f(g):\n    return [x async for x in g]\n", True),
        ("app = Starlette(lifespan=life)\n", True),
        ("app.add_event_handler('startup', warm)\n", True),
        ("return StreamingResponse(gen())\n", True),
        ("import threading\nlock = threading.Lock()\n", False),
    ],
)
def test_which_files_are_analysed_at_once(text: str, matters: bool) -> None:
    assert may_matter(text, build_knowledge({}, {})) is matters


@pytest.mark.parametrize(
    ("text", "matters"),
    [
        ('def f(s):\n    """Call it as `await s.execute()` in async code."""\n', False),
        ("class A:\n    if X:\n        async def f(self):\n            pass\n", True),
        ("try:\n    pass\nexcept E:\n    async def f():\n        pass\n", True),
        ("match x:\n    case 1:\n        async def f():\n            pass\n", True),
        ('class Pool:\n    """A pool.\n\n    Kept for the lifespan of the app.\n    """\n', False),
        ("def f():\n    # for the lifespan of the weakref\n    return 1\n", False),
        ('def f():\n    """Doc."""\n    return Starlette(lifespan=life)\n', True),
        ('"""Lifespan"""; app = FastAPI(lifespan=life)\n', True),
        ('x = """\n# lifespan\n"""\n', False),
        ('help = "the lifespan of a pool"\n', True),  # a string in code counts: no guess
        ('def f():\n    """\n    on_startup\n    """\n\napp.on_startup.append(f)\n', True),
    ],
)
def test_words_in_a_docstring_are_no_async_code(text: str, matters: bool) -> None:
    assert may_matter(text, build_knowledge({}, {}), ast.parse(text)) is matters
