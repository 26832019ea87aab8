"""Read `pystack remote PID` (or `pystack core FILE`) output, with or without --native/--locals.

    Traceback for thread 4571 (python3) [Has the GIL] (most recent call last):
        (Python) File "/srv/app/main.py", line 15, in <module>
            asyncio.run(main())
        (C) File "Modules/_asynciomodule.c", line 2990, in task_step (/usr/lib/...)
        (Python) File "/usr/lib/python3.11/threading.py", line 1119, in join
            self._wait_for_tstate_lock()
          Arguments:
            self: <Thread at 0x7f95f706b890>

The most recent call is LAST, so frames are reversed to innermost first. Only
Python frames are kept: native `(C)` frames have no line the analysis can
use. The name in parentheses is the OS thread name. `pystack remote` prints
no pid (`pystack core` does) and neither prints a clock; a thread id seen
again starts the next sample.
"""

from __future__ import annotations

import re

from hangdoctor.capture.dump_formats._common import (
    FrameDraft,
    SampleSplitter,
    ThreadDraft,
    local_from_text,
    truncated,
)
from hangdoctor.model import Snapshot

__all__ = ["HEADER", "parse_pystack"]

_THREAD = re.compile(
    r"^\s*Traceback for thread (\d+)(?: \((.*?)\))? \[([^\]]*)\] \(most recent call last\):\s*$"
)
_EMPTY = re.compile(r"^\s*The frame stack for thread (\d+) is empty\s*$")
_PY_FRAME = re.compile(r'^\s*\(Python\) File "(.*)", line (\d+), in (.*?)\s*$')
_C_FRAME = re.compile(r'^\s*\(C\) File "')
_LOCALS_HEADER = re.compile(r"^\s*(Arguments|Locals):\s*$")
_LOCAL = re.compile(r"^\s*([^:\s]+): ?(.*)$")
# `pystack core` prints the core's process first
_CORE_PID = re.compile(r"^\s*pid: (\d+) ppid: ")
_CORE_ARGS = re.compile(r"^\s*executable: \S+ arguments: (.*?)\s*$")
_NOISE = re.compile(r"^\s*(?:Interpreter-\d+.*|\* - .* - \*)\s*$")

HEADER = re.compile(
    r"^\s*(?:Traceback for thread \d+ .*\(most recent call last\):|\(Python\) File )"
)
"""A line that starts a pystack dump."""

_REMEDY = "Capture it again and keep the whole output: `pystack remote PID > dump.txt`."


def _thread(m: re.Match[str]) -> ThreadDraft:
    flags = {f.strip() for f in m.group(3).split(",") if f.strip()}
    has_gil = "Has the GIL" in flags
    return ThreadDraft(
        tid=int(m.group(1)),
        name=m.group(2) or None,
        header=m.group(0).strip(),
        active=True if has_gil else None,  # pystack says nothing of threads without the GIL
        owns_gil=has_gil,
    )


def _is_source(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(("(Python)", "(C)", "Traceback for"))


def parse_pystack(text: str, name: str) -> list[Snapshot]:
    """Every dump in `text` as one Snapshot, frames reversed to innermost first."""
    samples = SampleSplitter("pystack")
    lines = text.splitlines()
    thread: ThreadDraft | None = None
    frame: FrameDraft | None = None
    source_next = False  # the line after a Python frame is its source line
    in_args: bool | None = None
    last_known = True
    for line in lines:
        known = True
        if m := _THREAD.match(line):
            thread, frame, in_args, source_next = _thread(m), None, None, False
            samples.add_thread(thread)
        elif m := _CORE_PID.match(line):
            samples.new_sample(pid=int(m.group(1)))
            thread, frame, in_args, source_next = None, None, None, False
        elif samples.current is not None and (m := _CORE_ARGS.match(line)):
            samples.current.command = m.group(1) or None
        elif m := _EMPTY.match(line):
            thread, frame, in_args, source_next = None, None, None, False
            samples.add_thread(ThreadDraft(int(m.group(1)), None, line.strip(), no_frames_ok=True))
        elif thread is not None and (m := _PY_FRAME.match(line)):
            frame = FrameDraft(m.group(3), m.group(1), int(m.group(2)))
            thread.frames.append(frame)
            in_args, source_next = None, True
        elif thread is not None and _C_FRAME.match(line):
            frame, in_args, source_next = None, None, False
            thread.no_frames_ok = True
        elif frame is not None and (m := _LOCALS_HEADER.match(line)):
            in_args, source_next = m.group(1) == "Arguments", False
        elif frame is not None and in_args is not None and (m := _LOCAL.match(line)):
            frame.locals.append(local_from_text(m.group(1), m.group(2), is_arg=in_args))
        elif frame is not None and source_next and _is_source(line):
            source_next = False
        else:
            known = not line.strip() or bool(_NOISE.match(line))
        if line.strip():
            last_known = known
    if lines and not text.endswith("\n") and not last_known:
        raise truncated(name, "its last line", _REMEDY)
    last = samples.last_thread
    if last is not None and last is thread and not last.frames and not last.no_frames_ok:
        raise truncated(name, f"`{last.header}`, which has no frames", _REMEDY)
    return [s for s in samples.snapshots(reverse_frames=True) if s.threads]
