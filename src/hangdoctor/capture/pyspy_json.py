"""Turn py-spy's `dump --json` output into a `Snapshot`.

Shared by the live capture and by `analyze` on a saved JSON dump.
"""

from __future__ import annotations

from typing import Any

from hangdoctor.errors import BadDumpError
from hangdoctor.model import Frame, Local, Snapshot, Thread

__all__ = ["snapshot_from_pyspy_json"]


def snapshot_from_pyspy_json(
    data: Any,
    *,
    pid: int | None = None,
    taken_at: float | None = None,
    source: str = "py-spy",
    python_version: str | None = None,
    command: str | None = None,
    root: str | None = None,
    duration_s: float | None = None,
) -> Snapshot:
    """Build a Snapshot from the list py-spy prints; raise BadDumpError on any other shape."""
    if not isinstance(data, list):
        raise BadDumpError(
            "This JSON is not a py-spy dump (expected a list of threads).",
            "Save the output of `py-spy dump --json --pid PID` and pass that file.",
        )
    threads: list[Thread] = []
    found_pid = pid
    for raw in data:
        if not isinstance(raw, dict) or "frames" not in raw:
            raise BadDumpError(
                "This JSON is not a py-spy dump (a thread entry has no 'frames').",
                "Save the output of `py-spy dump --json --pid PID` and pass that file.",
            )
        if found_pid is None and isinstance(raw.get("pid"), int):
            found_pid = raw["pid"]
        threads.append(_thread(raw))
    return Snapshot(
        pid=found_pid or 0,
        taken_at=taken_at,
        threads=tuple(threads),
        source=source,
        python_version=python_version,
        command=command,
        root=root,
        duration_s=duration_s,
    )


def _thread(raw: dict[str, Any]) -> Thread:
    try:
        frames = tuple(_frame(f) for f in raw["frames"])
        os_tid = raw.get("os_thread_id")
        ident = raw.get("thread_id")
        return Thread(
            tid=int(os_tid) if os_tid is not None else int(ident or 0),
            name=raw.get("thread_name"),
            frames=frames,
            ident=int(ident) if ident is not None else None,
            active=raw.get("active"),
            owns_gil=raw.get("owns_gil"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadDumpError(
            f"This py-spy JSON dump has a malformed thread entry ({type(exc).__name__}: {exc}).",
            "Capture it again with `py-spy dump --json --pid PID > dump.json`.",
        ) from None


def _frame(raw: dict[str, Any]) -> Frame:
    return Frame(
        function=str(raw["name"]),
        file=str(raw.get("filename") or raw.get("short_filename") or "?"),
        line=int(raw.get("line") or 0),
        short_file=raw.get("short_filename"),
        module=raw.get("module"),
        locals=tuple(
            Local(
                name=str(loc.get("name")),
                repr=loc.get("repr"),
                addr=loc.get("addr"),
                is_arg=bool(loc.get("arg", False)),
            )
            for loc in (raw.get("locals") or ())
        ),
    )
