"""The server's own records during a probe: what `hangdoctor watch --out FILE` appended.

A server under `hangdoctor watch --out FILE` (or the runtime with a JSON Lines
writer) serves no metrics: each worker appends one JSON object per stall and
per stuck-request episode to FILE (src/hangdoctor/schemas/stall.json,
stuck.json). `RecordFollower` follows that file during the run, from where it
ended when the probe started: every `READ_EVERY_S` the bytes appended since the
last read are read in a worker thread (a file on a slow disk never holds up the
probe's loop; the health clock has a process of its own anyway), and once more
at the end. A file that does not exist yet is looked for again at each read; one
that is replaced or truncated (a rotated log) is read again from its start.

Lines come whole from each worker (one write each, O_APPEND), but a read may end
inside one: the partial tail waits for the next read. A line that is not a stall
or stuck record is counted, and the first reason said once, in the view.

Placement is exact: a record's moment is the runtime's wall clock
(`started_at` of a stall, `seen_at` of a stuck episode), and the probe keeps
its own wall clock at t = 0 (`ProbeResult.started_at`): t = moment - that. On
one host both are the same clock. Records that ended before t = 0 (the probe's
baseline, or older lines of a file read anew) are left out.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hangdoctor.probe.errors import ProbeError
from hangdoctor.probe.server_view import SCRAPE_EVERY_S, ServerRecord, ServerView
from hangdoctor.runtime.stall import StallRecord
from hangdoctor.runtime.stuck import StuckRecord

__all__ = [
    "READ_EVERY_S",
    "RecordFollower",
    "check_records_file",
    "parse_record",
]

READ_EVERY_S = SCRAPE_EVERY_S  # as often as the metrics are read
MAX_READ = 4 * 1024 * 1024  # per read: a file that grows faster is caught up over the next reads
MAX_LINE = 1024 * 1024  # a "line" longer than this, with no newline yet, is not a record

Record = StallRecord | StuckRecord


def check_records_file(path: str) -> None:
    """`--server-records FILE` before the probe starts: a regular, readable file, or none yet.

    A file that does not exist yet is fine (the server may create it later); a
    directory, a FIFO or a socket, or a file the probe cannot read, is a ProbeError.
    """
    remedy = "Pass the JSON Lines file the server writes with `hangdoctor watch --out FILE`."
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ProbeError(
            f"--server-records {path!r} cannot be read ({exc.strerror or exc}).", remedy
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise ProbeError(f"--server-records {path!r} is a directory, not a file.", remedy)
    if not stat.S_ISREG(info.st_mode):
        what = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        raise ProbeError(f"--server-records {path!r} is {what}, not a file.", remedy)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProbeError(
            f"--server-records {path!r} cannot be read ({exc.strerror or exc}).",
            "Run the probe as a user who can read it, or make it readable.",
        ) from None
    os.close(fd)


def parse_record(raw: bytes) -> Record | str:
    """One line as a stall or stuck record (schema_version 1 or 2), else why it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError too
        return "not JSON"
    if not isinstance(data, dict):
        return "not a JSON object"
    # version 1 lines had no `record` key: a stuck record has `seen_at`, a stall `started_at`
    kind = data.get("record", "stuck" if "seen_at" in data else "stall")
    if kind not in ("stall", "stuck"):
        return f"a {kind!r} record, not a stall or stuck record"
    try:
        if kind == "stall":
            return StallRecord.from_dict(data)
        return StuckRecord.from_dict(data)
    except KeyError as exc:
        return f"a {kind} record without the key {exc}"
    except (TypeError, ValueError, AttributeError) as exc:
        return f"a {kind} record that could not be read ({exc})"


def _placed(record: Record, started_at: float) -> ServerRecord:
    request = None
    if record.request is not None:
        request = f"{record.request.method} {record.request.route or record.request.path}"
    if isinstance(record, StallRecord):
        return ServerRecord(
            kind="stall",
            code=record.code,
            name=record.name,
            t=round(record.started_at - started_at, 3),
            blocked_for_s=record.duration,
            waiting_s=None,
            file=record.file,
            line=record.line,
            function=record.function,
            request=request,
            waits_on=record.waits_for.description if record.waits_for else None,
            task=None,
            pid=record.pid,
            message=record.message,
        )
    return ServerRecord(
        kind="stuck",
        code=record.code,
        name=record.name,
        t=round(record.seen_at - started_at, 3),
        blocked_for_s=None,
        waiting_s=record.waiting_s,
        file=record.file,
        line=record.line,
        function=record.function,
        request=request,
        waits_on=record.waits_on.describe() if record.waits_on else None,
        task=record.task,
        pid=record.pid,
        message=record.message,
    )


class RecordFollower:
    """Follows a JSON Lines file of stall and stuck records during a run (module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._file: tuple[int, int] | None = None  # (device, inode) of the file being read
        self._tail = b""  # a line not ended yet
        self._drop_first = False  # the read starts inside a line: it is not a whole record
        self._records: list[Record] = []
        self._skipped = 0
        self._why: str | None = None  # why the first skipped line was not a record
        self._problem: str | None = None  # the file itself could not be read
        self._seen = False
        self._lock = threading.Lock()  # a read in a thread and the last read never overlap

    def start(self) -> None:
        """Note where the file ends now: what it holds already was written before the probe."""
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                return  # not there yet: it is read from its start once it appears
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    return
                self._file = (info.st_dev, info.st_ino)
                self._offset = info.st_size
                self._seen = True
                if info.st_size:
                    self._drop_first = os.pread(fd, 1, info.st_size - 1) != b"\n"
            finally:
                os.close(fd)

    def poll(self) -> int:
        """Read what was appended since the last read; how many records it held."""
        with self._lock:
            data = self._read()
            return self._take(data) if data else 0

    def _read(self) -> bytes:
        try:
            # non-blocking: a FIFO put in the file's place must not hang the read
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            self._problem = self._problem or f"it could not be read ({exc.strerror or exc})"
            return b""
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self._problem = self._problem or "it was replaced by something that is not a file"
                return b""
            ident = (info.st_dev, info.st_ino)
            if self._file is not None and (ident != self._file or info.st_size < self._offset):
                # replaced or truncated (a rotated log): the new content is read from its start
                self._offset, self._tail, self._drop_first = 0, b"", False
            self._file = ident
            self._seen = True
            try:
                data = os.pread(fd, MAX_READ, self._offset)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    self._problem = self._problem or f"a read failed ({exc.strerror or exc})"
                return b""
        finally:
            os.close(fd)
        self._offset += len(data)
        return data

    def _take(self, data: bytes) -> int:
        *lines, self._tail = (self._tail + data).split(b"\n")
        if self._drop_first and lines:
            lines = lines[1:]
            self._drop_first = False
        if len(self._tail) > MAX_LINE:
            self._skip("a line longer than 1 MiB")
            self._tail, self._drop_first = b"", True
        found = 0
        for raw in lines:
            if not raw.strip():
                continue
            record = parse_record(raw)
            if isinstance(record, str):
                self._skip(record)
            else:
                self._records.append(record)
                found += 1
        return found

    def _skip(self, why: str) -> None:
        self._skipped += 1
        if self._why is None:
            self._why = why

    async def run(self, running: Callable[[], bool]) -> None:
        """Read every READ_EVERY_S while `running()`, each read in a worker thread."""
        while running():
            started = time.monotonic()
            await asyncio.to_thread(self.poll)
            await asyncio.sleep(max(0.0, READ_EVERY_S - (time.monotonic() - started)))

    def records(self, started_at: float) -> tuple[ServerRecord, ...]:
        """The records read so far on the probe's axis (t = 0 at wall time `started_at`), by t."""
        with self._lock:
            read = list(self._records)
        placed = (_placed(r, started_at) for r in read)
        return tuple(sorted((r for r in placed if r.t_end >= 0), key=lambda r: (r.t, r.pid)))

    def note(self) -> str | None:
        """One sentence on what could not be read, said once; None when all was read."""
        with self._lock:
            problem, skipped, why, seen = self._problem, self._skipped, self._why, self._seen
        if problem is not None:
            return f"{self.path} was followed until {problem}."
        if not seen:
            return f"{self.path} did not appear during the run: the server wrote no records to it."
        if skipped:
            if skipped == 1:
                what = f"1 line of {self.path} was not a stall or stuck record and was skipped"
            else:
                what = (
                    f"{skipped} lines of {self.path} were not stall or stuck records and were "
                    "skipped"
                )
            return f"{what} (the first: {why})."
        return None

    def into(self, view: ServerView | None, started_at: float) -> ServerView:
        """`view` (the metrics' view, if any) with what this file held during the run."""
        with self._lock:
            skipped = self._skipped
        records: dict[str, Any] = {
            "records_file": self.path,
            "records": self.records(started_at),
            "records_skipped": skipped,
            "records_note": self.note(),
        }
        return replace(view, **records) if view is not None else ServerView(url=None, **records)
