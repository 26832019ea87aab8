"""Every asyncio task of a live CPython 3.14 process, read from outside with its own interpreter.

The targets run Debian's python3.14 in the cached root (tests/py314/root.py), chrooted in
their own mount namespace as a container would: an AB-BA deadlock on two asyncio.Locks
between two named tasks, and a task waiting on an Event nobody sets. hangdoctor reads
them from the host (on the suite's Python, not 3.14), from inside the target's namespace
on 3.14 itself, from a root without CAP_SYS_ADMIN and across a PID namespace; a target on
the host's own Python has no tasks to read, and a dead pid says so.
"""

from __future__ import annotations

import asyncio.locks
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from tests.capture.conftest import READY, StartTarget
from tests.py314.root import (
    INSIDE_REPO,
    REPO,
    Py314Root,
    RootUnavailable,
    ensure_root,
    python_child,
)

from hangdoctor.capture import remote_tasks
from hangdoctor.capture.remote_tasks import read_tasks, supports_remote_tasks, target_version
from hangdoctor.capture.sampler import sample
from hangdoctor.errors import ProcessGoneError
from hangdoctor.model import Task

pytestmark = pytest.mark.e2e

INSIDE = "/srv/target"  # where the target's folder is mounted inside the root
DEADLOCK = f"""\
import asyncio


async def take_a_then_b(lock_a, lock_b):
    async with lock_a:
        await asyncio.sleep(0.05)
        async with lock_b:  # AB-WAITS
            pass


async def take_b_then_a(lock_a, lock_b):
    async with lock_b:
        await asyncio.sleep(0.05)
        async with lock_a:  # BA-WAITS
            pass


async def wait_for_go(go):
    await go.wait()  # EVENT-WAITS


async def main():
    lock_a, lock_b, go = asyncio.Lock(), asyncio.Lock(), asyncio.Event()
    tasks = [
        asyncio.create_task(take_a_then_b(lock_a, lock_b), name="ab-worker"),
        asyncio.create_task(take_b_then_a(lock_a, lock_b), name="ba-worker"),
        asyncio.create_task(wait_for_go(go), name="go-waiter"),
    ]
    await asyncio.sleep(0.3)
    print({READY!r}, flush=True)
    await asyncio.gather(*tasks)  # MAIN-WAITS


asyncio.run(main())
"""
NO_ASYNCIO = f"""\
import time
print({READY!r}, flush=True)
time.sleep(120)
"""


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(DEADLOCK.splitlines(), 1) if f"# {marker}" in text)


@pytest.fixture(scope="module")
def root314() -> Py314Root:
    """The suite's cached Python 3.14 root (tests/py314/conftest.py's `py314_root`)."""
    try:
        return ensure_root()
    except RootUnavailable as exc:
        pytest.skip(f"no Python 3.14 root: {exc}")


@pytest.fixture
def target_dir(tmp_path: Path) -> Path:
    """A folder mounted at INSIDE in the root: the targets' scripts (and a copied python)."""
    (tmp_path / "deadlock.py").write_text(DEADLOCK)
    (tmp_path / "no_asyncio.py").write_text(NO_ASYNCIO)
    return tmp_path


Start = Callable[..., int]


@pytest.fixture
def start314(root314: Py314Root, target_dir: Path, python_target: StartTarget) -> Start:
    """start(script, python=..., prefix=(), binds=()): the python3.14 pid of a target in the root.

    The whole tree (unshare, chroot, python) is in one process group that python_target
    kills by its id at teardown.
    """

    def start(
        script: str = "deadlock.py",
        *,
        python: str = "/usr/bin/python3.14",
        prefix: tuple[str, ...] = (),
        binds: tuple[str, ...] = (),
    ) -> int:
        argv = root314.run_argv(
            [python, f"{INSIDE}/{script}"], binds=(f"{target_dir}:{INSIDE}", *binds)
        )
        started = python_target(argv=[*prefix, *argv])
        return python_child(started.pid)

    return start


def _by_name(tasks: tuple[Task, ...]) -> dict[str, Task]:
    by_name = {t.name: t for t in tasks}
    assert len(by_name) == len(tasks), tasks
    return by_name


def _assert_the_deadlock(tasks: tuple[Task, ...], pid: int) -> None:
    """The three named tasks and main's, each innermost frame first, linked to main."""
    by_name = _by_name(tasks)
    assert {"ab-worker", "ba-worker", "go-waiter"} <= by_name.keys(), by_name.keys()
    main = next(t for t in tasks if t.frames and t.frames[-1].function == "main")
    assert main.frames[0].line == _line("MAIN-WAITS")
    assert main.awaited_by == ()
    for name, user_function, marker in (
        ("ab-worker", "take_a_then_b", "AB-WAITS"),
        ("ba-worker", "take_b_then_a", "BA-WAITS"),
    ):
        frames = by_name[name].frames
        assert [f.function for f in frames] == [
            "Lock.acquire",
            "_ContextManagerMixin.__aenter__",
            user_function,
        ], frames
        assert frames[0].file.endswith("/asyncio/locks.py")
        assert frames[0].short_file == "asyncio/locks.py"
        assert frames[-1].file == f"{INSIDE}/deadlock.py"
        assert frames[-1].short_file == "deadlock.py"
        assert frames[-1].line == _line(marker)
    waiter = by_name["go-waiter"].frames
    assert [f.function for f in waiter] == ["Event.wait", "wait_for_go"], waiter
    assert waiter[-1].line == _line("EVENT-WAITS")
    for name in ("ab-worker", "ba-worker", "go-waiter"):
        task = by_name[name]
        assert task.awaited_by == (main.id,), task  # gather() in main awaits each
        assert task.id not in (t.id for t in tasks if t is not task)
    for task in tasks:
        assert task.loop_tid == pid  # the loop runs on the main thread: its tid is the pid
        assert task.waits_on is None and task.holds == ()  # the analysis infers those


def test_reads_the_deadlocked_tasks_of_a_chrooted_314_target(start314: Start) -> None:
    """GIVEN an AB-BA Lock deadlock and an Event waiter in a 3.14 target chrooted in its own
    mount namespace WHEN the host's hangdoctor (not on 3.14) reads its tasks THEN every task
    with its name, its await chain innermost first (Lock.acquire at the user's line) and
    who awaits it."""
    pid = start314()
    assert os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "python3.14"
    assert sys.version_info[:2] != (3, 14), "this test is about reading 3.14 from another Python"
    assert target_version(pid) == (3, 14)
    assert supports_remote_tasks(pid)
    _assert_the_deadlock(read_tasks(pid, timeout=10.0), pid)


def test_reads_a_target_in_its_own_pid_namespace(start314: Start) -> None:
    """A target in its own PID namespace is read from in there (nsenter --pid, its own pid
    number), and the loop's thread is given back as the host numbers it."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    pid = start314(prefix=("unshare", "--pid", "--fork", "--kill-child", "--"))
    with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        nspid = next(line.split()[1:] for line in fh if line.startswith("NSpid:"))
    assert len(nspid) == 2 and int(nspid[-1]) != pid, nspid
    _assert_the_deadlock(read_tasks(pid, timeout=10.0), pid)


def test_reads_without_cap_sys_admin_through_chroot(start314: Start) -> None:
    """Without CAP_SYS_ADMIN (a debug container: `kubectl debug --target`) nsenter cannot
    enter the target's mounts; in its PID namespace, `chroot /proc/PID/root` can."""
    if not shutil.which("capsh"):
        pytest.skip("capsh (libcap2-bin) is not installed")
    pid = start314()
    code = (
        "import json, sys\n"
        "from hangdoctor.capture.remote_tasks import read_tasks\n"
        "tasks = read_tasks(int(sys.argv[1]), timeout=10.0)\n"
        "print(json.dumps({t.name: [f.function for f in t.frames] for t in tasks}))\n"
    )
    argv = [sys.executable, "-c", code, str(pid)]
    proc = subprocess.run(
        ["capsh", "--drop=cap_sys_admin", "--", "-c", 'exec "$@"', "reader", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = json.loads(proc.stdout)
    assert frames["ab-worker"][0] == "Lock.acquire"
    assert frames["go-waiter"] == ["Event.wait", "wait_for_go"]


def test_reads_in_process_when_hangdoctor_runs_on_314(root314: Py314Root, start314: Start) -> None:
    """hangdoctor on 3.14 in the target's own namespace (as from `kubectl exec`) reads the
    tasks in-process, with no subprocess, and finds the same tasks."""
    pid = start314(binds=(f"{REPO}:{INSIDE_REPO}:ro",))
    code = textwrap.dedent(
        f"""\
        import json, subprocess, sys
        sys.path.insert(0, "{INSIDE_REPO}/src")
        from hangdoctor.capture import remote_tasks
        pid = int(sys.argv[1])
        assert remote_tasks._can_read_in_process(pid, (3, 14))
        def no_subprocess(*args, **kwargs):
            raise AssertionError("a subprocess was started")
        subprocess.Popen = no_subprocess
        tasks = remote_tasks.read_tasks(pid)
        print(json.dumps({{t.name: [f.function for f in t.frames] for t in tasks}}))
        """
    )
    argv = root314.nsenter_argv(pid, ["/usr/bin/python3.14", "-c", code, str(pid)])
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = json.loads(proc.stdout)
    assert frames["ba-worker"] == [
        "Lock.acquire",
        "_ContextManagerMixin.__aenter__",
        "take_b_then_a",
    ]
    assert frames["go-waiter"] == ["Event.wait", "wait_for_go"]


def test_reads_a_target_whose_interpreter_was_deleted(
    root314: Py314Root, start314: Start, target_dir: Path
) -> None:
    """An upgrade deleted the running interpreter's binary: another python3.14 of the
    target's filesystem (the one beside the standard library it maps) still reads it."""
    copy = target_dir / "bin" / "python3.14"
    copy.parent.mkdir()
    shutil.copy2(root314.path / "usr/bin/python3.14", copy)
    pid = start314(python=f"{INSIDE}/bin/python3.14")
    copy.unlink()
    assert os.readlink(f"/proc/{pid}/exe").endswith(" (deleted)")
    assert supports_remote_tasks(pid)
    _assert_the_deadlock(read_tasks(pid, timeout=10.0), pid)


def test_a_314_target_without_asyncio_has_no_tasks(start314: Start) -> None:
    """A 3.14 program that never imported asyncio has no tasks: none, and no error."""
    pid = start314("no_asyncio.py")
    assert supports_remote_tasks(pid)
    assert read_tasks(pid, timeout=10.0) == ()


def test_a_target_on_the_hosts_python_has_no_tasks_to_read(
    python_target: StartTarget,
) -> None:
    """An asyncio program on the host's own Python (older than 3.14) has nothing for this
    reader: no tasks, no error, and its samples say no source saw tasks."""
    assert sys.version_info < (3, 14)
    target = python_target(
        f"""
        import asyncio
        async def main():
            print({READY!r}, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
        """
    )
    assert target_version(target.pid) == sys.version_info[:2]
    assert not supports_remote_tasks(target.pid)
    assert read_tasks(target.pid) == ()
    result = sample([target.pid], samples=1)
    assert result.errors == {} and result.task_errors == {}
    (snap,) = result.snapshots[target.pid]
    assert snap.tasks == () and snap.tasks_source is None


def test_a_dead_pid_is_a_clear_error(dead_pid: int) -> None:
    """A pid that runs nothing: no tasks support, and reading says the process is gone."""
    assert not supports_remote_tasks(dead_pid)
    with pytest.raises(ProcessGoneError, match=f"No process with PID {dead_pid} is running"):
        read_tasks(dead_pid)


def test_the_sampler_attaches_the_tasks_to_every_sample(start314: Start) -> None:
    """Each py-spy sample of a 3.14 target carries the tasks read right after it."""
    pid = start314()
    result = sample([pid], samples=2, interval=0.2, timeout=10.0)
    assert result.errors == {} and result.task_errors == {}, (result.errors, result.task_errors)
    snaps = result.snapshots[pid]
    assert len(snaps) == 2
    for snap in snaps:
        assert snap.tasks_source == "remote"
        _assert_the_deadlock(snap.tasks, pid)
        main = next(t for t in snap.threads if t.tid == pid)
        assert main.frames[0].file.endswith("selectors.py")  # the loop itself is idle


def test_a_failed_task_read_keeps_the_thread_samples(start314: Start) -> None:
    """A task read that misses its deadline costs the samples nothing: they keep their
    threads, carry no tasks, and the reason is kept (once) for the diagnosis' notes."""
    pid = start314()
    result = sample([pid], samples=2, interval=0.1, timeout=10.0, tasks_timeout=0.001)
    assert result.errors == {}
    snaps = result.snapshots[pid]
    assert len(snaps) == 2
    assert all(s.threads and s.tasks == () and s.tasks_source is None for s in snaps)
    assert list(result.task_errors) == [pid]
    assert "did not finish within 0.001 s" in result.task_errors[pid].message


# -- the reader's tables, with a stand-in for CPython's _remote_debugging ---------------------


class _FrameInfo(NamedTuple):  # a structseq as 3.14's: a tuple, equal by its fields
    filename: str
    lineno: int
    funcname: str


class _Location:
    """A frame location that cannot be hashed, as a later release might give."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, lineno: int) -> None:
        self.lineno = lineno


class _LaterFrameInfo(NamedTuple):
    filename: str
    location: _Location
    funcname: str


class _CoroInfo(NamedTuple):
    call_stack: list[Any]
    task_name: int | str


class _TaskInfo(NamedTuple):
    task_id: int
    task_name: str
    coroutine_stack: list[_CoroInfo]
    awaited_by: list[_CoroInfo]


class _AwaitedInfo(NamedTuple):
    thread_id: int
    awaited_by: list[_TaskInfo]


LOCKS = asyncio.locks.__file__  # a real file: short_file looks at its folders
APP = "/srv/app/handler.py"


def _handler_stack(frame: Callable[[str, int, str], Any]) -> list[Any]:
    return [frame(LOCKS, 213, "Event.wait"), frame(APP, 4, "leaf"), frame(APP, 8, "handler")]


def _infos(frame: Callable[[str, int, str], Any] = _FrameInfo) -> list[_AwaitedInfo]:
    """Main's gather awaits two handlers (one by id, one by name, twice); a third thread's
    task is split over two coroutine stacks; thread 0 has none."""
    main_stack = [frame(APP, 20, "main")]
    main = _TaskInfo(1, "Task-1", [_CoroInfo(main_stack, 1)], [])
    by_id = _TaskInfo(2, "Task-2", [_CoroInfo(_handler_stack(frame), 2)], [_CoroInfo([], 1)])
    by_name = _TaskInfo(
        3,
        "Task-3",
        [_CoroInfo(_handler_stack(frame), 3)],
        [_CoroInfo([], "Task-1"), _CoroInfo([], 1), _CoroInfo([], "nobody")],
    )
    split = _TaskInfo(
        4,
        "worker",
        [_CoroInfo(_handler_stack(frame)[:1], 4), _CoroInfo([frame(APP, 30, "work")], 4)],
        [],
    )
    return [
        _AwaitedInfo(100, [main, by_id, by_name]),
        _AwaitedInfo(101, [split]),
        _AwaitedInfo(0, []),
    ]


def _reader(monkeypatch: pytest.MonkeyPatch, infos: list[_AwaitedInfo]) -> dict[str, Any]:
    """The reader's namespace, exec'd as in-process reading does, over `infos`."""

    class RemoteUnwinder:
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def get_all_awaited_by(self) -> list[_AwaitedInfo]:
            return infos

    fake = types.ModuleType("_remote_debugging")
    fake.RemoteUnwinder = RemoteUnwinder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_remote_debugging", fake)
    namespace: dict[str, Any] = {"__name__": "hangdoctor_remote_reader"}
    exec(compile(remote_tasks._READER, "<reader>", "exec"), namespace)
    return namespace


def _assert_the_fake_tasks(tasks: tuple[Task, ...]) -> None:
    main, by_id, by_name, split = tasks
    assert [(t.id, t.name, t.loop_tid) for t in tasks] == [
        (1, "Task-1", 100),
        (2, "Task-2", 100),
        (3, "Task-3", 100),
        (4, "worker", 101),
    ]
    assert [(f.function, f.file, f.line) for f in main.frames] == [("main", APP, 20)]
    assert [(f.function, f.line) for f in by_id.frames] == [
        ("Event.wait", 213),
        ("leaf", 4),
        ("handler", 8),
    ]
    assert by_id.frames[0].short_file == "asyncio/locks.py"
    assert [(f.function, f.line) for f in split.frames] == [("Event.wait", 213), ("work", 30)]
    assert main.awaited_by == () and split.awaited_by == ()
    assert by_id.awaited_by == (1,)
    assert by_name.awaited_by == (1,)  # the name resolved to main's id, once; "nobody" dropped
    # one chain, one tuple; one frame, one object
    assert by_id.frames is by_name.frames
    assert split.frames[0] is by_id.frames[0]


def test_the_reader_sends_each_await_chain_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's tables hold each distinct frame and chain once; read in-process or
    through its JSON, they make the same tasks, chains shared between tasks."""
    namespace = _reader(monkeypatch, _infos())
    data = namespace["read"](4242)
    assert len(data["frames"]) == 5 and len(data["stacks"]) == 3
    assert [t["thread"] for t in data["threads"]] == [100, 101, 0]
    text = namespace["_dump"](data)
    assert json.loads(text) == json.loads(json.dumps(data))
    in_process = remote_tasks._tasks(os.getpid(), data, inner_tids=False)
    through_json = remote_tasks._tasks(os.getpid(), json.loads(text), inner_tids=False)
    assert in_process == through_json
    _assert_the_fake_tasks(in_process)
    _assert_the_fake_tasks(through_json)


def test_the_reader_keys_unhashable_frames_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later release's frame that cannot be hashed (a location object) still reads."""

    def later(filename: str, line: int, funcname: str) -> _LaterFrameInfo:
        return _LaterFrameInfo(filename, _Location(line), funcname)

    namespace = _reader(monkeypatch, _infos(later))
    data = json.loads(namespace["_dump"](namespace["read"](4242)))
    _assert_the_fake_tasks(remote_tasks._tasks(os.getpid(), data, inner_tids=False))


def test_the_reader_without_the_json_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CPython's _json helper the reader prints the same JSON through `json`."""
    namespace = _reader(monkeypatch, _infos())
    data = namespace["read"](4242)
    fast = namespace["_dump"](data)
    monkeypatch.setitem(sys.modules, "_json", None)
    assert namespace["_dump"](data) == fast


def test_the_reader_error_keeps_its_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed read prints {"error", "errno", "message"}, which says why."""
    namespace = _reader(monkeypatch, [])

    def denied(self: object) -> list[_AwaitedInfo]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(
        sys.modules["_remote_debugging"].RemoteUnwinder, "get_all_awaited_by", denied
    )
    assert json.loads(namespace["_dump"](namespace["read"](4242))) == {
        "error": "PermissionError",
        "errno": 1,
        "message": "[Errno 1] Operation not permitted",
    }
    assert namespace["_dump"](namespace["read"](4242)).startswith('{"error":"PermissionError"')


def test_loop_threads_numbered_inside_a_pid_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read inside the target's PID namespace, a loop's thread is given back as the host
    numbers it; an unknown thread (0) is no thread."""
    namespace = _reader(monkeypatch, _infos())
    data = namespace["read"](4242)
    monkeypatch.setattr(remote_tasks, "_host_tids", lambda pid: {100: 5100})
    tasks = remote_tasks._tasks(os.getpid(), data, inner_tids=True)
    assert [t.loop_tid for t in tasks] == [5100, 5100, 5100, 101]
    data["threads"][0]["thread"] = 0
    assert remote_tasks._tasks(os.getpid(), data, inner_tids=True)[0].loop_tid is None
