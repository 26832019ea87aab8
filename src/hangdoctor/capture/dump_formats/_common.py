"""Pieces every dump reader shares: the format names, drafts of threads, sample splitting.

Text dumps are read line by line into mutable drafts, then frozen into the
model once a sample is complete. A file may hold several dumps of the same
process one after another; a thread id seen twice means the next dump began.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from hangdoctor.analysis.frames import is_native_file
from hangdoctor.errors import BadDumpError
from hangdoctor.model import Frame, Local, Snapshot, Thread

__all__ = [
    "DumpFormat",
    "FrameDraft",
    "SampleSplitter",
    "ThreadDraft",
    "is_native_file",
    "local_from_text",
    "truncated",
]


class DumpFormat(str, enum.Enum):
    """The kinds of saved dump `analyze` reads."""

    PYSPY_JSON = "py-spy-json"  # `py-spy dump --json`, one or more lists, or JSON Lines
    HANGDOCTOR_CAPTURE = "hangdoctor-capture"  # `hangdoctor diagnose --save`
    PYSPY_TEXT = "py-spy-text"  # `py-spy dump`
    FAULTHANDLER = "faulthandler"  # faulthandler.dump_traceback and the crash report
    PYSTACK = "pystack"  # `pystack remote PID` / `pystack core FILE`

    @property
    def label(self) -> str:
        """How the format is named in messages."""
        return _LABELS[self]


_LABELS = {
    DumpFormat.PYSPY_JSON: "py-spy JSON dump",
    DumpFormat.HANGDOCTOR_CAPTURE: "hangdoctor capture",
    DumpFormat.PYSPY_TEXT: "py-spy dump",
    DumpFormat.FAULTHANDLER: "faulthandler dump",
    DumpFormat.PYSTACK: "pystack dump",
}

# py-spy --locals and pystack --locals print objects as `<Type at 0x7f...>`
_ADDR_REPR = re.compile(r"^<[\w.]+ (?:object )?at (0x[0-9a-fA-F]+)>$")


def local_from_text(name: str, value: str, *, is_arg: bool) -> Local:
    """A local as a text dump prints it; the object address is read back from its repr."""
    m = _ADDR_REPR.match(value)
    return Local(
        name=name,
        repr=None if value == "?" else value,  # py-spy prints "?" when it has no repr
        addr=int(m.group(1), 16) if m else None,
        is_arg=is_arg,
    )


def truncated(name: str, where: str, remedy: str) -> BadDumpError:
    """The error for a dump cut short; `where` says at what point it stops."""
    return BadDumpError(f"{name} ends in the middle of {where}, so the dump was cut short.", remedy)


@dataclass
class FrameDraft:
    function: str
    file: str
    line: int
    short_file: str | None = None
    locals: list[Local] = field(default_factory=list)

    def build(self) -> Frame:
        return Frame(
            function=self.function,
            file=self.file,
            line=self.line,
            short_file=self.short_file,
            locals=tuple(self.locals),
        )


@dataclass
class ThreadDraft:
    tid: int
    name: str | None
    header: str  # the header line as printed, for messages
    ident: int | None = None
    active: bool | None = None
    owns_gil: bool | None = None
    frames: list[FrameDraft] = field(default_factory=list)
    no_frames_ok: bool = False  # the dump says itself that the thread has no Python frame

    def build(self, *, reverse: bool) -> Thread:
        frames = [f.build() for f in self.frames]
        if reverse:
            frames.reverse()
        return Thread(
            tid=self.tid,
            name=self.name,
            frames=tuple(frames),
            ident=self.ident,
            active=self.active,
            owns_gil=self.owns_gil,
        )


@dataclass
class _SampleDraft:
    pid: int = 0
    python_version: str | None = None
    command: str | None = None
    threads: list[ThreadDraft] = field(default_factory=list)


class SampleSplitter:
    """Collects threads into samples: a header, or a thread id seen again, starts the next one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.samples: list[_SampleDraft] = []

    def new_sample(
        self, pid: int = 0, python_version: str | None = None, command: str | None = None
    ) -> None:
        self.samples.append(_SampleDraft(pid, python_version, command))

    @property
    def current(self) -> _SampleDraft | None:
        return self.samples[-1] if self.samples else None

    def add_thread(self, draft: ThreadDraft) -> None:
        cur = self.current
        if cur is None:
            self.new_sample()
        elif any(t.tid == draft.tid for t in cur.threads):
            self.new_sample(cur.pid, cur.python_version, cur.command)
        self.samples[-1].threads.append(draft)

    @property
    def last_thread(self) -> ThreadDraft | None:
        cur = self.current
        return cur.threads[-1] if cur is not None and cur.threads else None

    def snapshots(self, *, reverse_frames: bool = False) -> list[Snapshot]:
        """The samples, frozen; `reverse_frames` for dumps printed outermost frame first."""
        return [
            Snapshot(
                pid=s.pid,
                taken_at=None,
                threads=tuple(t.build(reverse=reverse_frames) for t in s.threads),
                source=self.source,
                python_version=s.python_version,
                command=s.command,
            )
            for s in self.samples
        ]
