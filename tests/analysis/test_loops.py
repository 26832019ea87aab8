"""Finding loop threads and their running callback from the stack's shape alone.

Stacks here are plain data written the way py-spy reports them (innermost first);
the golden captures in tests/data/golden are the same checks on real processes.
"""

from __future__ import annotations

from hangdoctor.analysis.loops import loop_view, worker_state
from hangdoctor.model import Frame, LoopKind, Thread

LIB = "/usr/lib/python3.12"
SITE = "/srv/.venv/lib/python3.12/site-packages"
APP = "/srv/app/api/routes/causes.py"


def _f(function: str, file: str, line: int = 1) -> Frame:
    return Frame(function=function, file=file, line=line)


def _t(*frames: Frame, name: str = "MainThread") -> Thread:
    return Thread(tid=1, name=name, frames=frames, active=False)


SERVER = (
    _f("Server.run", f"{SITE}/uvicorn/server.py"),
    _f("run", f"{SITE}/uvicorn/main.py"),
    _f("<module>", f"{SITE}/uvicorn/__main__.py"),
)
ASYNCIO_RUNNER = (
    _f("BaseEventLoop._run_once", f"{LIB}/asyncio/base_events.py"),
    _f("BaseEventLoop.run_forever", f"{LIB}/asyncio/base_events.py"),
    _f("BaseEventLoop.run_until_complete", f"{LIB}/asyncio/base_events.py"),
    _f("Runner.run", f"{LIB}/asyncio/runners.py"),
    _f("run", f"{LIB}/asyncio/runners.py"),
    *SERVER,
)
UVLOOP_RUNNER = (  # uvloop's loop is C: the runner is the innermost Python loop frame
    _f("Runner.run", f"{LIB}/asyncio/runners.py"),
    _f("run", f"{LIB}/asyncio/runners.py"),
    *SERVER,
)
HANDLER = (
    _f("sleep_on_loop", APP, 41),
    _f("run_endpoint_function", f"{SITE}/fastapi/routing.py"),
    _f("Router.__call__", f"{SITE}/starlette/routing.py"),
)
THREAD_RUN = (
    _f("Thread.run", f"{LIB}/threading.py"),
    _f("Thread._bootstrap_inner", f"{LIB}/threading.py"),
    _f("Thread._bootstrap", f"{LIB}/threading.py"),
)


def test_asyncio_loop_in_the_selector_is_idle() -> None:
    """An asyncio loop with no Handle._run on the stack is in its own machinery: idle."""
    select = _f("EpollSelector.select", f"{LIB}/selectors.py")
    view = loop_view(_t(select, *ASYNCIO_RUNNER))
    assert view is not None
    assert (view.kind, view.idle) == (LoopKind.ASYNCIO, True)


def test_asyncio_callback_is_everything_inner_to_handle_run() -> None:
    """The running callback is the frames above Handle._run, the user's frame included."""
    handle = _f("Handle._run", f"{LIB}/asyncio/events.py")
    view = loop_view(_t(*HANDLER, handle, *ASYNCIO_RUNNER))
    assert view is not None and not view.idle
    assert view.callback == HANDLER


def test_uvloop_idle_and_running() -> None:
    """Under uvloop nothing above the runner means idle; coroutine frames on it are the callback."""
    idle = loop_view(_t(*UVLOOP_RUNNER))
    assert idle is not None and (idle.kind, idle.idle) == (LoopKind.UVLOOP, True)
    busy = loop_view(_t(*HANDLER, *UVLOOP_RUNNER))
    assert busy is not None and busy.callback == HANDLER


def test_other_threads_are_not_loops() -> None:
    """A socketserver thread in select, an executor worker and an AnyIO worker run no loop."""
    upstream = _t(
        _f("_PollLikeSelector.select", f"{LIB}/selectors.py"),
        _f("BaseServer.serve_forever", f"{LIB}/socketserver.py"),
        *THREAD_RUN,
        name="slow-upstream",
    )
    pool = _t(
        _f("fetch_news", "/srv/app/api/routes/stream.py", 25),
        _f("_WorkItem.run", f"{LIB}/concurrent/futures/thread.py"),
        _f("_worker", f"{LIB}/concurrent/futures/thread.py"),
        *THREAD_RUN,
        name="ThreadPoolExecutor-0_0",
    )
    anyio = _t(
        _f("slow_sync_report", APP, 136),
        _f("WorkerThread.run", f"{SITE}/anyio/_backends/_asyncio.py"),
        *THREAD_RUN[1:],
        name="AnyIO worker thread",
    )
    assert [loop_view(t) for t in (upstream, pool, anyio)] == [None, None, None]


def test_anyio_worker_state() -> None:
    """An AnyIO worker waiting in queue.get is idle, one inside a route is busy, others are None."""
    run = _f("WorkerThread.run", f"{SITE}/anyio/_backends/_asyncio.py")
    idle = _t(
        _f("Condition.wait", f"{LIB}/threading.py"),
        _f("Queue.get", f"{LIB}/queue.py"),
        run,
        *THREAD_RUN[1:],
    )
    busy = _t(
        _f("slow_sync_report", APP, 136),
        _f("_run_sync_endpoint", f"{SITE}/fastapi/telemetry/_api.py"),
        run,
        *THREAD_RUN[1:],
    )
    # a route that itself waits on a queue is busy: only a get() straight from run() is idle
    waits_in_route = _t(
        _f("Queue.get", f"{LIB}/queue.py"), _f("handler", APP), run, *THREAD_RUN[1:]
    )
    assert worker_state(idle) is False
    assert worker_state(busy) is True
    assert worker_state(waits_in_route) is True
    assert worker_state(_t(*THREAD_RUN)) is None


def test_uvloop_under_uvicorns_own_asyncio_run_on_python_310() -> None:
    """uvicorn 0.36+ on 3.10 runs uvloop from its copy of asyncio.run: still a loop thread.

    Seen live: a uvloop server on Python 3.10 was "no event loop" (exit 2)."""
    frames = (
        _f("asyncio_run", f"{SITE}/uvicorn/_compat.py", 60),
        _f("Server.run", f"{SITE}/uvicorn/server.py"),
        *SERVER[1:],
    )
    view = loop_view(_t(*frames))
    assert view is not None and (view.kind, view.idle) == (LoopKind.UVLOOP, True)
    handler = loop_view(_t(*HANDLER, *frames))
    assert handler is not None and not handler.idle
