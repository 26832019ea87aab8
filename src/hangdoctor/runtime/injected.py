"""Run inside a target by `hangdoctor diagnose --inject`: one read of its asyncio tasks.

capture/inject.py copies the hangdoctor package into a private directory the
target can see, stops the target's loop thread with gdb while that thread sits
in the loop's poll (no libc lock held, the GIL released) and makes it run
`exec` of this file, with `__name__` set to `__hangdoctor_inject__` and
`__file__` naming the copy. The read happens on the loop's own thread between
two turns of the loop, as the watchdog's does, so every task is suspended at
an `await` while it is read.

It changes nothing the target keeps: the copied package is imported under the
name `hangdoctor` only for the read, and the target's own `hangdoctor` modules
(a service that uses the middleware) are put back; no name is left in
`__main__`; the only write is the JSON answer, to a file in the private directory:

    {"tasks": [Task as model.to_dict gives it, ...], "thread": native id}
    {"error": "busy" | "no-loop" | ExceptionName, "message": "..."}

"busy" is the refusal: the loop was not idle (a task was running, or a
selector loop was not inside its `select`); reading then could see a task half
way through a step, and the caller tries again a little later.

Standard library only, like the rest of the runtime, and nothing here may raise.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["read_tasks_here"]

ENTRY_NAME = "__hangdoctor_inject__"
_PACKAGE = "hangdoctor"


def read_tasks_here(package_dir: str, skip_files: tuple[str, ...] = ()) -> dict[str, Any]:
    """The tasks of the loop running on this thread, read with the package at `package_dir`.

    `skip_files` are the code files of the injection itself (this file, gdb's
    `<string>`): the first frame below them is where the loop thread was stopped.
    """
    import asyncio
    import threading

    loop = asyncio._get_running_loop()
    if loop is None:
        return {"error": "no-loop", "message": "no event loop runs on this thread"}
    busy = _busy(loop, skip_files)
    if busy is not None:
        return {"error": "busy", "message": busy}
    saved = {n: m for n, m in sys.modules.items() if n == _PACKAGE or n.startswith(_PACKAGE + ".")}
    try:
        for name in saved:
            del sys.modules[name]
        snapshot_tasks, to_dict = _load(package_dir)
        tasks = snapshot_tasks(loop)
        return {"tasks": [to_dict(t) for t in tasks], "thread": threading.get_native_id()}
    except BaseException as exc:  # the target must go on whatever happened here
        return {"error": type(exc).__name__, "message": str(exc)[:500]}
    finally:
        for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _busy(loop: Any, skip_files: tuple[str, ...]) -> str | None:
    """Why the loop is not idle right now, or None when it waits for I/O between turns."""
    import asyncio

    current = asyncio.current_task(loop)
    if current is not None:
        return f"task {current.get_name()} was running"
    if type(loop).__module__.startswith("uvloop"):
        # uvloop's loop is compiled: no Python frame shows its poll; gdb saw this thread in
        # the poll call, and no task is in a step
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in skip_files:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "no Python frame below the injection"
    code = frame.f_code
    if code.co_name == "select" and os.path.basename(code.co_filename) == "selectors.py":
        return None
    return f"the loop thread was in {code.co_name} ({code.co_filename}:{frame.f_lineno})"


def _load(package_dir: str) -> tuple[Any, Any]:
    """`snapshot_tasks` and `to_dict` from the copy at `package_dir`, not from sys.path."""
    import importlib
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        _PACKAGE,
        os.path.join(package_dir, "__init__.py"),
        submodule_search_locations=[package_dir],
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {package_dir}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = package
    spec.loader.exec_module(package)
    # submodules resolve through the package's __path__: the copy, whatever sys.path says
    tasks = importlib.import_module(_PACKAGE + ".runtime.tasks")
    model = importlib.import_module(_PACKAGE + ".model")
    return tasks.snapshot_tasks, model.to_dict


def _answer(out_path: str, answer: dict[str, Any]) -> None:
    import json

    partial = out_path + ".partial"
    try:
        with open(partial, "w", encoding="utf-8") as fh:
            json.dump(answer, fh)
        os.replace(partial, out_path)  # the caller never reads half an answer
    except (OSError, TypeError, ValueError):
        pass


if __name__ == ENTRY_NAME:  # exec'd in the target by the injection, never imported
    _here = globals()["__file__"]
    _package_dir = os.path.dirname(os.path.dirname(_here))
    _answer(
        globals()["OUT_PATH"],
        read_tasks_here(_package_dir, skip_files=(_here, "<string>")),
    )
