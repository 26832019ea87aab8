"""Reading the target's source: lines, the enclosing `with`, calls resolved through imports."""

from __future__ import annotations

from pathlib import Path

from hangdoctor.analysis.source import SourceReader

APP = """\
import time as t
from urllib.request import urlopen
import requests
from concurrent.futures import ThreadPoolExecutor


async def handler(lock, sock):
    t.sleep(1)
    urlopen("http://127.0.0.1:1/")
    requests.Session().get("http://127.0.0.1:1/")
    lock.acquire()
    data = sock.recv(
        1024,
    )
    with ThreadPoolExecutor() as ex:
        async def inner():
            open("x")
        await inner()
"""


def test_calls_are_resolved_through_imports(tmp_path: Path) -> None:
    """Aliases, from-imports and calls on constructed objects resolve to dotted names."""
    f = tmp_path / "app.py"
    f.write_text(APP)
    r = SourceReader()
    assert [c.qualname for c in r.calls_at(str(f), 8)] == ["time.sleep"]
    assert [c.qualname for c in r.calls_at(str(f), 9)] == ["urllib.request.urlopen"]
    assert r.calls_at(str(f), 10)[0].qualname == "requests.Session.get"
    lock = r.calls_at(str(f), 11)[0]
    assert (lock.qualname, lock.attr) == (None, "acquire")
    # a call spanning lines is found from any of its lines
    assert r.calls_at(str(f), 13)[0].attr == "recv"


def test_nested_defs_are_not_the_line(tmp_path: Path) -> None:
    """A `with` header line does not report calls inside its body's nested functions."""
    f = tmp_path / "app.py"
    f.write_text(APP)
    names = [c.attr for c in SourceReader().calls_at(str(f), 15)]
    assert names == ["ThreadPoolExecutor"]


def test_enclosing_with(tmp_path: Path) -> None:
    """The `with` around a line is found, preferring an executor."""
    f = tmp_path / "app.py"
    f.write_text(APP)
    assert SourceReader().enclosing_with(str(f), 18) == 15
    assert SourceReader().enclosing_with(str(f), 15) == 15
    assert SourceReader().enclosing_with(str(f), 8) is None


def test_source_root_maps_paths_from_another_machine(tmp_path: Path) -> None:
    """A dump taken elsewhere is read from a checkout via the longest matching path tail."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "x.py").write_text("a = 1\nb = 2\n")
    r = SourceReader(source_root=str(tmp_path))
    assert r.line("/deploy/srv/api/x.py", 2) == "b = 2"
    assert r.line("/deploy/srv/api/missing.py", 1) is None


def test_encoding_and_bad_files(tmp_path: Path) -> None:
    """A PEP 263 coding line is honoured; a file that does not parse still gives its lines."""
    f = tmp_path / "latin.py"
    f.write_bytes("# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n".encode("latin-1"))
    assert SourceReader().line(str(f), 2) == "name = 'café'"
    g = tmp_path / "broken.py"
    g.write_text("def f(:\n    time.sleep(1)\n")
    r = SourceReader()
    assert r.line(str(g), 2) == "    time.sleep(1)"
    assert r.enclosing_with(str(g), 2) is None


MODULE_OBJECTS = """\
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
pool: ThreadPoolExecutor = ThreadPoolExecutor(max_workers=2)
twice = threading.Lock()
twice = threading.RLock()


async def uses_module_objects():
    _lock.acquire()
    pool.submit(print).result()
    twice.acquire()


async def shadows(_lock):
    _lock.acquire()


async def declares_global():
    global pool
    pool = ThreadPoolExecutor()
    pool.shutdown()
"""


def _line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_module_level_objects_resolve_to_their_type(tmp_path: Path) -> None:
    """`_lock = threading.Lock()` at module level makes `_lock.acquire()` threading.Lock.acquire."""
    f = tmp_path / "app.py"
    f.write_text(MODULE_OBJECTS)
    r = SourceReader()
    (acquire,) = r.calls_at(str(f), _line(MODULE_OBJECTS, "    _lock.acquire()"))
    assert acquire.qualname == "threading.Lock.acquire"
    assert (acquire.text, acquire.on_object) == ("_lock.acquire", True)
    submit = r.calls_at(str(f), _line(MODULE_OBJECTS, "pool.submit"))
    assert "concurrent.futures.ThreadPoolExecutor.submit" in [c.qualname for c in submit]
    # bound twice at module level: its type is not known
    (twice,) = r.calls_at(str(f), _line(MODULE_OBJECTS, "twice.acquire"))
    assert (twice.qualname, twice.attr, twice.on_object) == (None, "acquire", True)


def test_local_names_hide_module_objects(tmp_path: Path) -> None:
    """An argument named like a module object is not that object; a `global` one still is."""
    f = tmp_path / "app.py"
    f.write_text(MODULE_OBJECTS)
    r = SourceReader()
    lines = MODULE_OBJECTS.splitlines()
    shadowed = lines.index("async def shadows(_lock):") + 2
    (call,) = r.calls_at(str(f), shadowed)
    assert (call.qualname, call.attr) == (None, "acquire")
    (shutdown,) = r.calls_at(str(f), _line(MODULE_OBJECTS, "pool.shutdown"))
    assert shutdown.qualname == "concurrent.futures.ThreadPoolExecutor.shutdown"
