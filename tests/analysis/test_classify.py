"""Naming the cause of a stuck callback: library frames first, else the user's source line."""

from __future__ import annotations

from pathlib import Path

from hangdoctor.analysis.classify import classify_callback, rule_for_call_sites, rule_for_calls
from hangdoctor.analysis.source import CallAtLine, SourceReader
from hangdoctor.model import Frame

LIB = "/usr/lib/python3.12"
SITE = "/srv/.venv/lib/python3.12/site-packages"

APP = """\
import os
import select
import sqlite3
import threading
import time
from urllib.request import urlopen

import vendor

_lock = threading.Lock()
conn = sqlite3.connect(":memory:")


async def handler(path):
    _lock.acquire()
    urlopen("http://127.0.0.1:1/")
    vendor.client.fetch()
    select.select([], [], [], 5)
    conn.execute("select 1")
    os.path.join(path, "x")
    time.sleep(1)
    with _lock:
        pass
    with path.lock:
        pass
    with conn:
        pass
"""


def _line(needle: str) -> int:
    return next(i for i, ln in enumerate(APP.splitlines(), 1) if needle in ln)


def _user(tmp_path: Path, needle: str) -> Frame:
    f = tmp_path / "app.py"
    f.write_text(APP)
    return Frame(function="handler", file=str(f), line=_line(needle))


def test_c_level_wait_is_named_by_the_line(tmp_path: Path) -> None:
    """Lock.acquire waits in C: the user frame is on top and its line names HD206."""
    cls = classify_callback((_user(tmp_path, "_lock.acquire"),), SourceReader(), on_cpu=False)
    assert (cls.rule.code, cls.user_index, cls.via_frame) == ("HD206", 0, False)
    assert cls.evidence == "`_lock.acquire()` (threading.Lock.acquire)"


def test_library_frame_names_the_rule_and_the_line_names_the_call(tmp_path: Path) -> None:
    """urlopen leaves urllib frames: they pick HD202; the evidence is the call as written."""
    frames = (
        Frame("socket.recv_into", f"{LIB}/socket.py", 720),
        Frame("HTTPConnection.getresponse", f"{LIB}/http/client.py", 1428),
        Frame("urlopen", f"{LIB}/urllib/request.py", 215),
        _user(tmp_path, "urlopen("),
    )
    cls = classify_callback(frames, SourceReader(), on_cpu=False)
    assert (cls.rule.code, cls.user_index, cls.via_frame) == ("HD202", 3, True)
    assert cls.evidence == "`urlopen()` (urllib.request.urlopen)"


def test_library_frame_is_the_evidence_when_the_line_does_not_show_it(tmp_path: Path) -> None:
    """A vendor SDK that calls requests: the requests frame is named as module.function."""
    frames = (
        Frame("Session.send", f"{SITE}/requests/sessions.py", 703),
        Frame("get", f"{SITE}/requests/api.py", 73),
        Frame("Client.fetch", f"{SITE}/vendor/client.py", 10),
        _user(tmp_path, "vendor.client.fetch"),
    )
    cls = classify_callback(frames, SourceReader(), on_cpu=False)
    assert (cls.rule.code, cls.user_index) == ("HD202", 3)
    assert cls.evidence == "`requests.api.get()`"


def test_unknown_wait_names_the_call_and_cpu_does_not(tmp_path: Path) -> None:
    """A call the catalog lacks is HD900 with the call named; on CPU it is HD501."""
    user = (_user(tmp_path, "select.select"),)
    unknown = classify_callback(user, SourceReader(), on_cpu=False)
    assert (unknown.rule.code, unknown.evidence) == ("HD900", "`select.select()`")
    assert classify_callback(user, SourceReader(), on_cpu=True).rule.code == "HD501"


def test_method_names_count_only_on_objects(tmp_path: Path) -> None:
    """`os.path.join` is no Thread.join; `conn.execute` on a sqlite3 connection is HD203."""
    reader = SourceReader()
    join = classify_callback((_user(tmp_path, "os.path.join"),), reader, on_cpu=False)
    assert join.rule.code == "HD900"
    execute = classify_callback((_user(tmp_path, "conn.execute"),), reader, on_cpu=False)
    assert (execute.rule.code, execute.evidence) == (
        "HD203",
        "`conn.execute()` (sqlite3.connect.execute)",
    )


def test_rule_for_calls_keeps_its_pair_interface() -> None:
    """The (qualname, attr) form still matches qualified names, then methods of unknown objects."""
    found = rule_for_calls((("time.sleep", "sleep"),))
    assert found is not None and (found[0].code, found[1]) == ("HD201", "time.sleep")
    found = rule_for_calls(((None, "recv"),))
    assert found is not None and (found[0].code, found[1]) == ("HD203", ".recv()")
    assert rule_for_calls((("os.path.join", "join"),)) is None
    site = CallAtLine("threading.Lock.acquire", "acquire", "lk.acquire", on_object=True)
    hit = rule_for_call_sites([site])
    assert hit is not None and hit[0].code == "HD206"


def test_with_lock_waits_in_a_c_level_enter(tmp_path: Path) -> None:
    """`with lock:` blocked with no frame above the user's: HD206, the lock named as written."""
    reader = SourceReader()
    module_lock = classify_callback((_user(tmp_path, "with _lock:"),), reader, on_cpu=False)
    assert (module_lock.rule.code, module_lock.evidence) == (
        "HD206",
        "`with _lock:` (threading.Lock)",
    )
    unknown = classify_callback((_user(tmp_path, "with path.lock:"),), reader, on_cpu=False)
    assert (unknown.rule.code, unknown.evidence) == ("HD206", "`with path.lock:`")
    # a known object that is not a lock is not taken for one
    not_a_lock = classify_callback((_user(tmp_path, "with conn:"),), reader, on_cpu=False)
    assert not_a_lock.rule.code == "HD900"
