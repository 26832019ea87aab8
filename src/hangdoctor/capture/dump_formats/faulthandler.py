"""Read faulthandler output: `dump_traceback(all_threads=True)`, `dump_traceback_later`,
`register(signal)` and the report of a fatal error or signal (`python -X faulthandler`).

    Timeout (0:00:01)!
    Thread 0x00007f6ce29986c0 (most recent call first):
      File "/srv/app/feed.py", line 5 in fetch_news
      ...
    Current thread 0x00007f6ce486bb80 (most recent call first):
      File "/usr/lib/python3.12/threading.py", line 1167 in _wait_for_tstate_lock

Functions are bare names (`join`, not `Thread.join`); the analysis matches
those by their last part. Threads are named by their Python ident only, and
the dump has no pid and no clock. Consecutive dumps in one stream are told
apart by a `Timeout (...)!` or `Fatal Python error` line, a `Stack` header,
or a thread id seen again.
"""

from __future__ import annotations

import re

from hangdoctor.capture.dump_formats._common import (
    FrameDraft,
    SampleSplitter,
    ThreadDraft,
    truncated,
)
from hangdoctor.model import Snapshot

__all__ = ["HEADER", "parse_faulthandler"]

_THREAD = re.compile(
    r"^(Current thread|Thread) (0x[0-9a-fA-F]+)(.*?) \(most recent call first\):\s*$"
)
_STACK = re.compile(r"^Stack \(most recent call first\):\s*$")
_FRAME = re.compile(r'^\s+File "(.*)", line (\d+|\?\?\?) in (.*?)\s*$')
_DUMP_START = re.compile(r"^(?:Timeout \([\d:.]+\)!|Fatal Python error: .*)\s*$")
# deep stacks end in "  ...", a thread without frames says "  <no Python frame>"
_MARKER = re.compile(r"^\s+(\.\.\.|<[^>]*>|Garbage-collecting)\s*$")
_NAME = re.compile(r'^\s*(?:\[(.*)\]|"(.*)")\s*$')  # should a version print thread names

HEADER = re.compile(
    r"^(?:(?:Current thread|Thread) 0x[0-9a-fA-F]+.* \(most recent call first\):"
    r"|Stack \(most recent call first\):)"
)
"""A line that starts a thread in faulthandler output."""

_REMEDY = (
    "Capture it again and keep all of stderr, e.g. "
    "`faulthandler.dump_traceback(file=f, all_threads=True)` into a file of its own."
)


def _thread(m: re.Match[str]) -> ThreadDraft:
    ident = int(m.group(2), 16)
    named = _NAME.match(m.group(3))
    return ThreadDraft(
        tid=ident,  # faulthandler knows the Python ident only, not the OS thread id
        name=(named.group(1) or named.group(2)) if named else None,
        header=m.group(0).strip(),
        ident=ident,
    )


def parse_faulthandler(text: str, name: str) -> list[Snapshot]:
    """Every dump in `text` as one Snapshot, frames innermost first as faulthandler prints them."""
    samples = SampleSplitter("faulthandler")

    def next_sample() -> None:
        cur = samples.current
        if cur is None or cur.threads:
            samples.new_sample()

    lines = text.splitlines()
    thread: ThreadDraft | None = None
    last_known = True
    for line in lines:
        known = True
        if m := _THREAD.match(line):
            thread = _thread(m)
            samples.add_thread(thread)
        elif _STACK.match(line):
            next_sample()
            thread = ThreadDraft(tid=0, name=None, header=line.strip())
            samples.add_thread(thread)
        elif _DUMP_START.match(line):
            next_sample()
            thread = None
        elif thread is not None and (m := _FRAME.match(line)):
            lineno = 0 if m.group(2) == "???" else int(m.group(2))
            thread.frames.append(FrameDraft(m.group(3), m.group(1), lineno))
        elif thread is not None and (m := _MARKER.match(line)):
            thread.no_frames_ok = True
        else:
            known = not line.strip()
        if line.strip():
            last_known = known
    if lines and not text.endswith("\n") and not last_known:
        raise truncated(name, "its last line", _REMEDY)
    last = samples.last_thread
    if last is not None and last is thread and not last.frames and not last.no_frames_ok:
        raise truncated(name, f"`{last.header}`, which has no frames", _REMEDY)
    return [s for s in samples.snapshots() if s.threads]
