"""Across functions and modules: chains through sync helpers, any depth, relative imports."""

from __future__ import annotations

from tests.scan.conftest import run_scan

PACKAGE = {
    "newsapp/__init__.py": "",
    "newsapp/net/__init__.py": "from .client import fetch as fetch_it\n",
    "newsapp/net/client.py": """\
import requests


def fetch(url):
    return requests.get(url, timeout=5)


def countdown(n):
    if n:
        return countdown(n - 1)
    return fetch("http://upstream")
""",
    "newsapp/feeds.py": """\
import threading

from newsapp.net import fetch_it
from .net.client import countdown


def load_feed():
    return fetch_it("http://upstream/feed")


def ping_pong(n):
    return pong(n)


def pong(n):
    return ping_pong(n)


class Worker(threading.Thread):
    pass


class Store:
    def __init__(self):
        self._lock = threading.Lock()

    def read(self):
        with self._lock:
            return 1

    def fill(self, items):  # a thread holds the lock across a loop: `read` may wait
        with self._lock:
            for item in items:
                self.add(item)

    def refresh(self):
        return load_feed()


class CachedStore(Store):
    pass
""",
    "newsapp/routes/__init__.py": "",
    "newsapp/routes/stream.py": """\
import asyncio

from .. import feeds
from ..feeds import CachedStore, Worker, countdown, load_feed


async def news_stream():
    data = load_feed()
    await asyncio.to_thread(load_feed)
    feeds.ping_pong(3)
    store = CachedStore()
    store.read()
    store.refresh()
    countdown(3)
    Worker().join()
    return data
""",
}


def test_chains_across_modules(write) -> None:  # type: ignore[no-untyped-def]
    """A route calling helpers in other modules is reported at the call, with the chain."""
    root = write(PACKAGE)
    result = run_scan([root / "newsapp"], root)
    got = {(f.line, f.code): f for f in result.findings}
    assert set(got) == {(8, "HD202"), (12, "HD206"), (13, "HD202"), (14, "HD202"), (15, "HD206")}
    load = got[(8, "HD202")]
    assert load.file == "newsapp/routes/stream.py"
    assert load.function == "news_stream"
    assert load.chain == ("news_stream", "load_feed", "fetch", "requests.get")
    assert load.col == 11
    assert "newsapp/net/client.py:5" in load.message
    steps = result.chain_of(load)
    assert [(s.file, s.line) for s in steps] == [
        ("newsapp/routes/stream.py", 8),
        ("newsapp/feeds.py", 8),
        ("newsapp/net/client.py", 5),
    ]
    # methods through a subclass, a lock taken by `with`, recursion, a Thread subclass
    assert got[(12, "HD206")].chain == ("news_stream", "Store.read", "with self._lock")
    assert got[(13, "HD202")].chain[:3] == ("news_stream", "Store.refresh", "load_feed")
    assert got[(14, "HD202")].chain == ("news_stream", "countdown", "fetch", "requests.get")
    assert got[(15, "HD206")].chain == ()


def test_changed_helper_changes_the_chain(write) -> None:  # type: ignore[no-untyped-def]
    """The chain follows the code: once the helper stops blocking, the route is clean."""
    root = write(PACKAGE)
    client = root / "newsapp/net/client.py"
    client.write_text("def fetch(url):\n    return url\n\n\ndef countdown(n):\n    return n\n")
    result = run_scan([root / "newsapp"], root)
    assert {(f.line, f.code) for f in result.findings} == {(12, "HD206"), (15, "HD206")}


def test_deep_chain(write) -> None:  # type: ignore[no-untyped-def]
    """A chain of any depth is followed, and the shortest path is the one shown."""
    lines = ["import time", ""]
    for i in range(40):
        lines += [f"def f{i}():", f"    return f{i + 1}()", ""]
    lines += ["def f40():", "    time.sleep(1)", "", "", "async def route():", "    f0()", ""]
    root = write({"deep.py": "\n".join(lines)})
    result = run_scan([root / "deep.py"], root)
    (finding,) = result.findings
    assert finding.chain[0] == "route" and finding.chain[-1] == "time.sleep"
    assert len(finding.chain) == 43


def test_same_module_name_twice_is_not_confused(write) -> None:  # type: ignore[no-untyped-def]
    """Two scripts called app.py: each one's calls resolve in its own file."""
    root = write(
        {
            "a/app.py": "import time\n\ndef helper():\n    time.sleep(1)\n\n"
            "async def main():\n    helper()\n",
            "b/app.py": "def helper():\n    return 1\n\nasync def main():\n    helper()\n",
        }
    )
    result = run_scan([root], root)
    assert [(f.file, f.line) for f in result.findings] == [("a/app.py", 7)]


def test_sync_generator_handed_to_a_stream_is_not_run_on_the_loop(write) -> None:  # type: ignore[no-untyped-def]
    """Starlette iterates a sync generator in a thread; iterating it yourself is on the loop."""
    root = write(
        {
            "gen.py": """\
import time
from starlette.responses import StreamingResponse


def chunks():
    time.sleep(1)
    yield b"x"


async def route():
    return StreamingResponse(chunks())


async def local():
    return [c for c in chunks()]
"""
        }
    )
    result = run_scan([root], root)
    assert [(f.line, f.code) for f in result.findings] == [(15, "HD201")]
