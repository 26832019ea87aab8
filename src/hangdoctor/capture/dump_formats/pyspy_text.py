"""Read `py-spy dump --pid PID` text output, with or without --locals, --native or -s.

    Process 3380: python app.py
    Python v3.11.7 (/usr/bin/python3.11)

    Thread 3380 (idle): "MainThread"
        Thread.join (threading.py:1119)
            Arguments:
                self: <Thread at 0x7f95f706b890>

py-spy prints the OS thread id in decimal when it knows it, else the Python
ident in hex (`Thread 0x7F95F7A1B740`). Files are the short paths py-spy
prints, which is all the dump has. Several dumps appended to one file are
several samples: each `Process N:` header starts one.

py-spy prints no end marker, so a dump cut at a line boundary is told by its
shape: every thread that `threading` started (it has a name) has
`Thread._bootstrap` as its outermost frame, and the main thread `<module>` or
runpy's frames. When the last stack of the file stops short of that, the rest
was cut off, and what is missing may be the very thread that holds the loop:
it is an error, never a verdict on half a dump.
"""

from __future__ import annotations

import re

from hangdoctor.capture.dump_formats._common import (
    FrameDraft,
    SampleSplitter,
    ThreadDraft,
    is_native_file,
    local_from_text,
    truncated,
)
from hangdoctor.errors import BadDumpError
from hangdoctor.model import Snapshot

__all__ = ["HEADER", "parse_pyspy_text"]

_PROCESS = re.compile(r"^Process (\d+): ?(.*?)\s*$")
_PYTHON = re.compile(r"^Python v(\S+)")
_NOISE = re.compile(r"^(?:Parent Process \d+:.*|-{3,}\s*)$")  # from `py-spy dump -s`
_THREAD = re.compile(r'^Thread (\d+|0[xX][0-9A-Fa-f]+) \(([a-z+]+)\)(?:: "(.*)")?\s*$')
# the function is greedy so the file is whatever stands in the last parentheses
_FRAME = re.compile(r"^ {4}(\S.*) \((.+?)(?::(\d+))?\)\s*$")
_LOCALS_HEADER = re.compile(r"^ {8}(Arguments|Locals):+\s*$")
_LOCAL = re.compile(r"^ {12}([^:\s]+): ?(.*)$")

HEADER = re.compile(r"^(?:Process \d+: |Thread (?:\d+|0[xX][0-9A-Fa-f]+) \([a-z+]+\))")
"""A line that starts a py-spy text dump."""

_REMEDY = "Capture it again and keep the whole output: `py-spy dump --pid PID > dump.txt`."
# the outermost frame of a whole stack: a script or `-m` module, a `threading` thread,
# or the interpreter's own exit (threading._shutdown, atexit handlers of the stdlib)
_ENTRY_FUNCTIONS = frozenset(
    {
        "<module>",
        "_bootstrap",
        "_run_module_as_main",
        "_run_code",
        "run_module",
        "run_path",
        "_shutdown",
        "_python_exit",
        "_exit_function",
        "_run_finalizers",
    }
)


def _thread(m: re.Match[str]) -> ThreadDraft:
    raw_id, status, name = m.group(1), m.group(2), m.group(3)
    hex_id = raw_id.lower().startswith("0x")
    number = int(raw_id, 16) if hex_id else int(raw_id)
    return ThreadDraft(
        tid=number,
        name=name,
        header=m.group(0).strip(),
        ident=number if hex_id else None,
        active=status != "idle",
        # an idle thread's GIL state is not printed
        owns_gil=True if "gil" in status else (False if status == "active" else None),
    )


def _looks_whole(thread: ThreadDraft) -> bool:
    """Whether the stack reaches a thread's first frame (True when that cannot be told)."""
    if thread.name is None or thread.name.startswith("Dummy-"):
        return True  # started outside `threading` (C code, a foreign thread): any frame
    if not thread.frames:
        return False  # a `threading` thread runs Python; --native printed only C so far
    outermost = thread.frames[-1]
    return outermost.function.rsplit(".", 1)[-1] in _ENTRY_FUNCTIONS or "runpy" in (outermost.file)


def parse_pyspy_text(text: str, name: str) -> list[Snapshot]:
    """Every dump in `text` as one Snapshot, frames innermost first as py-spy prints them."""
    samples = SampleSplitter("py-spy-text")
    lines = text.splitlines()
    thread: ThreadDraft | None = None
    frame: FrameDraft | None = None  # the last frame, to attach locals to
    in_args: bool | None = None  # inside an Arguments: (True) or Locals: (False) block
    last_known = True
    last_line = 0  # the number of the last line that is not blank
    for number, line in enumerate(lines, start=1):
        known = True
        if m := _PROCESS.match(line):
            samples.new_sample(pid=int(m.group(1)), command=m.group(2) or None)
            thread, frame, in_args = None, None, None
        elif m := _PYTHON.match(line):
            if samples.current is None:
                samples.new_sample()
            assert samples.current is not None
            samples.current.python_version = m.group(1)
        elif m := _THREAD.match(line):
            thread, frame, in_args = _thread(m), None, None
            samples.add_thread(thread)
        elif thread is not None and (m := _FRAME.match(line)):
            file, lineno = m.group(2), int(m.group(3) or 0)
            in_args = None
            if is_native_file(file):
                frame = None  # C frames of --native: not Python, nothing to attach
                thread.no_frames_ok = True
            else:
                frame = FrameDraft(m.group(1), file, lineno, short_file=file)
                thread.frames.append(frame)
        elif frame is not None and (m := _LOCALS_HEADER.match(line)):
            in_args = m.group(1) == "Arguments"
        elif frame is not None and in_args is not None and (m := _LOCAL.match(line)):
            frame.locals.append(local_from_text(m.group(1), m.group(2), is_arg=in_args))
        else:
            known = not line.strip() or bool(_NOISE.match(line))
        if line.strip():
            last_known, last_line = known, number
    if lines and not text.endswith("\n") and not last_known:
        raise truncated(name, "its last line", _REMEDY)
    last = samples.last_thread
    if last is not None and last is thread and not last.frames and not last.no_frames_ok:
        raise truncated(name, f"`{last.header}`, which has no frames", _REMEDY)
    if last is not None and last is thread and not _looks_whole(last):
        f = last.frames[-1] if last.frames else None
        stop = f"at `{f.function} ({f.file}:{f.line})`" if f else "before its first Python frame"
        raise BadDumpError(
            f"{name} looks cut off at line {last_line}: the stack of `{last.header}` stops "
            f"{stop}, before the thread's first frame (`<module>` or `Thread._bootstrap`).",
            _REMEDY,
        )
    cur = samples.current
    if cur is not None and not cur.threads:
        raise truncated(name, f"the dump of process {cur.pid}, which lists no thread", _REMEDY)
    return [s for s in samples.snapshots() if s.threads]
