"""Find event-loop threads and split their stacks into loop machinery and callback code.

The decision never uses py-spy's `idle` flag: a loop thread blocked in
`Thread.join` is flagged idle exactly like one waiting in `select`. It uses
the stack's shape instead:

- asyncio: `BaseEventLoop._run_once` is on the stack. Frames inner to
  `Handle._run` are the callback that is running; no `Handle._run` means the
  loop is in its own machinery (normally the selector): idle.
- uvloop (or any C loop): no Python loop frames exist. Coroutine frames sit
  directly on the runner (`Runner.run`, `asyncio.run`, `uvloop.run`); nothing
  inner to the runner means idle.
"""

from __future__ import annotations

from dataclasses import dataclass

from hangdoctor.analysis.frames import frame_matches
from hangdoctor.catalog.rule import FramePattern
from hangdoctor.model import Frame, LoopKind, Thread

__all__ = ["LoopView", "loop_view", "worker_state"]

_RUN_ONCE = (FramePattern("asyncio/base_events.py", "BaseEventLoop._run_once"),)
_HANDLE_RUN = (FramePattern("asyncio/events.py", "Handle._run"),)
_RUNNERS = (
    FramePattern("asyncio/runners.py", "Runner.run"),
    FramePattern("asyncio/runners.py", "run"),
    FramePattern("asyncio/base_events.py", "BaseEventLoop.run_until_complete"),
    FramePattern("asyncio/base_events.py", "BaseEventLoop.run_forever"),
    FramePattern("uvloop/__init__.py", "run"),
    # uvicorn 0.36+ on Python 3.10 runs its loop (uvloop too) from its own copy of asyncio.run
    FramePattern("uvicorn/_compat.py", "asyncio_run"),
    FramePattern("anyio/_backends/_asyncio.py", "run"),
    # granian runs the app's loop (uvloop by default) straight from its worker spawners
    *(
        FramePattern(f"granian/server/{mod}.py", f"{cls}.{fn}")
        for mod, cls in (("mp", "MPServer"), ("mt", "MTServer"))
        for fn in ("_spawn_asgi_worker", "_spawn_asgi_lifespan_worker", "_spawn_rsgi_worker")
    ),
)
_ANYIO_WORKER = (FramePattern("anyio/_backends/_asyncio.py", "WorkerThread.run"),)
_IDLE_WAITS = (
    FramePattern("queue.py", "Queue.get"),
    FramePattern("queue.py", "Queue._get"),
    FramePattern("threading.py", "Condition.wait"),
)


@dataclass(frozen=True)
class LoopView:
    """One loop thread in one snapshot."""

    kind: LoopKind
    callback: tuple[Frame, ...]  # frames of the running callback, innermost first; () = idle

    @property
    def idle(self) -> bool:
        return not self.callback


def _index(frames: tuple[Frame, ...], patterns: tuple[FramePattern, ...]) -> int | None:
    """Index of the innermost frame matching any pattern."""
    for i, frame in enumerate(frames):
        if any(frame_matches(frame, p) for p in patterns):
            return i
    return None


def loop_view(thread: Thread) -> LoopView | None:
    """The loop seen in this thread, or None when the thread runs no event loop."""
    frames = thread.frames
    run_once = _index(frames, _RUN_ONCE)
    if run_once is not None:
        handle = _index(frames[:run_once], _HANDLE_RUN)
        callback = frames[:handle] if handle is not None else ()
        return LoopView(LoopKind.ASYNCIO, callback)
    runner = _index(frames, _RUNNERS)
    if runner is None:
        return None
    return LoopView(LoopKind.UVLOOP, frames[:runner])


def worker_state(thread: Thread) -> bool | None:
    """For an AnyIO worker thread: True busy, False idle; None if it is not one."""
    frames = thread.frames
    run = _index(frames, _ANYIO_WORKER)
    if run is None:
        return None
    inner = frames[:run]
    if not inner:
        return False
    # idle workers wait for work in queue.get() called straight from WorkerThread.run
    return not any(frame_matches(inner[-1], p) for p in _IDLE_WAITS[:2])
