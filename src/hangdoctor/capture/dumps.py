"""Saved dumps for `hangdoctor analyze FILE`: read any supported format, write our own.

`load_dump` reads a file, `parse_dump` text already read; both find the
format themselves (py-spy text or JSON, faulthandler, pystack, or a capture
saved by `hangdoctor diagnose --save`) and return one Snapshot per sample, in
file order, so the analysis sees consecutive samples. Anything else the user
may hand over (a missing file, a directory, a core file, a cut-off dump) is a
`BadDumpError` with one sentence and the remedy, never a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import select
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from hangdoctor.capture.dump_formats import faulthandler, pyspy_text, pystack
from hangdoctor.capture.dump_formats._common import DumpFormat
from hangdoctor.capture.dump_formats.json_dumps import (
    CAPTURE_FORMAT,
    capture_to_json,
    looks_like_json,
    parse_json,
)
from hangdoctor.errors import BadDumpError, HangdoctorError
from hangdoctor.model import Snapshot
from hangdoctor.outfile import check_writable, reason, write_atomic

__all__ = [
    "MAX_DUMP_BYTES",
    "PIPE_IDLE_S",
    "DumpFormat",
    "capture_to_json",
    "check_save_path",
    "detect_format",
    "load_dump",
    "parse_dump",
    "save_capture",
    "save_error",
]

MAX_DUMP_BYTES = 50 * 1024 * 1024
PIPE_IDLE_S = 10.0  # a pipe that sends nothing for this long has no dump coming

_PARSERS: dict[DumpFormat, Callable[[str, str], list[Snapshot]]] = {
    DumpFormat.PYSPY_JSON: parse_json,
    DumpFormat.HANGDOCTOR_CAPTURE: parse_json,
    DumpFormat.PYSPY_TEXT: pyspy_text.parse_pyspy_text,
    DumpFormat.FAULTHANDLER: faulthandler.parse_faulthandler,
    DumpFormat.PYSTACK: pystack.parse_pystack,
}
_TEXT_HEADERS = (
    (pyspy_text.HEADER, DumpFormat.PYSPY_TEXT),
    (faulthandler.HEADER, DumpFormat.FAULTHANDLER),
    (pystack.HEADER, DumpFormat.PYSTACK),
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, when a dump was taken on a terminal
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\ufffd]")
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"PK\x03\x04", "zip", "unzip"),
)
_FORMATS_HINT = (
    "Pass the output of `py-spy dump --pid PID` (text or --json), "
    "faulthandler.dump_traceback(all_threads=True), `pystack remote PID`, "
    "or a file written by `hangdoctor diagnose --save FILE`."
)


def detect_format(text: str) -> DumpFormat | None:
    """The format of a dump's text, from its first thread header; None if none is found."""
    if looks_like_json(text):
        head = text[:4096]
        return DumpFormat.HANGDOCTOR_CAPTURE if CAPTURE_FORMAT in head else DumpFormat.PYSPY_JSON
    for line in text.splitlines():
        for header, fmt in _TEXT_HEADERS:
            if header.match(line):
                return fmt
    return None


def parse_dump(
    text: str, *, name: str = "<input>", fmt: DumpFormat | None = None
) -> list[Snapshot]:
    """The samples in a dump's text, one Snapshot each, in order; `fmt` skips detection."""
    if len(text) > MAX_DUMP_BYTES:
        raise _too_large(name, len(text))
    text = _ANSI.sub("", text.lstrip("\ufeff"))
    if not text.strip():
        raise BadDumpError(
            f"{name} is empty.",
            "Capture again and check that the command wrote its output to the file "
            "(e.g. `py-spy dump --pid PID > dump.txt`).",
        )
    found = fmt or detect_format(text)
    if found is None:
        raise _unrecognised(text, name)
    snapshots = _PARSERS[found](text, name)
    if not snapshots:
        raise BadDumpError(f"{name} holds no stack samples to analyse.", _FORMATS_HINT)
    return snapshots


def load_dump(path: str | Path) -> list[Snapshot]:
    """Read a saved dump file of any supported format; one Snapshot per sample, in order."""
    p = Path(path)
    name = str(path)
    data = _read(p, name)
    return parse_dump(_decode(data, name), name=name)


def save_capture(snapshots: Sequence[Snapshot], path: str | Path) -> Path:
    """Write `snapshots` as a hangdoctor capture that `load_dump` reads back unchanged.

    The file is replaced atomically, so a reader never sees half of it, and a
    failure (a full disk) leaves the old file as it was.
    """
    p = Path(path)
    try:
        write_atomic(p, capture_to_json(snapshots))
    except (OSError, ValueError) as exc:
        why = reason(exc) if isinstance(exc, OSError) else "it is not a valid path"
        raise save_error(p, why) from None
    return p


def check_save_path(path: Path | None) -> None:
    """Refuse a --save path that cannot be written, before any sampling is done."""
    if path is not None and (why := check_writable(path)) is not None:
        raise save_error(path, why)


def save_error(path: Path, why: str) -> HangdoctorError:
    """The error for a capture that cannot be saved to `path`, because of `why`."""
    return HangdoctorError(
        f"The capture cannot be saved to {path}: {why}.",
        "Pass a file path in a directory you can write to, e.g. `--save /tmp/capture.json`.",
    )


def _os_error(name: str, exc: OSError) -> BadDumpError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return BadDumpError(
            f"{name} was not found.", "Check the path and pass the file that holds the dump."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BadDumpError(
            f"{name} cannot be read: permission denied.",
            f"Make it readable (`sudo chmod a+r {name}`) or run hangdoctor as its owner.",
        )
    if exc.errno == errno.EISDIR:
        return _directory(name)
    return BadDumpError(
        f"{name} cannot be read ({exc.strerror or exc}).",
        "Copy the dump to a regular local file and pass that file.",
    )


def _directory(name: str) -> BadDumpError:
    return BadDumpError(
        f"{name} is a directory, not a dump file.",
        "Pass the dump file itself, e.g. `hangdoctor analyze DIR/dump.txt`.",
    )


def _too_large(name: str, size: int) -> BadDumpError:
    mb = 1024 * 1024
    return BadDumpError(
        f"{name} is {size / mb:.0f} MB, more than the {MAX_DUMP_BYTES // mb} MB hangdoctor reads.",
        "Keep only a few dumps of the hung process (e.g. the last three samples) in the file.",
    )


def _read(p: Path, name: str) -> bytes:
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise _directory(name)
        if stat.S_ISREG(st.st_mode):
            if st.st_size > MAX_DUMP_BYTES:
                raise _too_large(name, st.st_size)
            with p.open("rb") as fh:
                data = fh.read(MAX_DUMP_BYTES + 1)  # a /proc file reports no size
        elif stat.S_ISSOCK(st.st_mode) or stat.S_ISBLK(st.st_mode):
            kind = "a socket" if stat.S_ISSOCK(st.st_mode) else "a block device"
            raise BadDumpError(f"{name} is {kind}, not a dump file.", _PIPE_REMEDY)
        else:
            data = _read_stream(p, name)
    except OSError as exc:
        raise _os_error(name, exc) from None
    except ValueError:  # a NUL byte in the path
        raise BadDumpError(
            f"{name} is not a valid file path.", "Check the path and pass the dump file."
        ) from None
    if len(data) > MAX_DUMP_BYTES:
        raise _too_large(name, len(data))
    return data


_PIPE_REMEDY = (
    "Save the dump to a file (`py-spy dump --pid PID > dump.txt`) and pass that, "
    "or pipe it in: `py-spy dump --pid PID | hangdoctor analyze -`."
)


def _read_stream(p: Path, name: str) -> bytes:
    """A named pipe or character device, read with a deadline: never wait forever.

    Opening a FIFO blocks until a writer comes, and reading one blocks while the
    writer is silent; `hangdoctor analyze <(py-spy dump ...)` is such a pipe with
    a writer. Non-blocking open and poll: the read ends at end of file, or with
    an error once nothing has arrived for PIPE_IDLE_S.
    """
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_DUMP_BYTES:
            if not poller.poll(PIPE_IDLE_S * 1000):
                raise _silent(name, total)
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _silent(name: str, received: int) -> BadDumpError:
    idle = f"{PIPE_IDLE_S:.0f} s"
    if received:
        return BadDumpError(
            f"{name} stopped sending after {received} bytes: nothing more came for {idle} "
            "and the writer did not close it.",
            _PIPE_REMEDY,
        )
    return BadDumpError(
        f"Nothing was written to {name} in {idle}: it is a named pipe (FIFO) or device "
        "that no program is writing a dump to.",
        _PIPE_REMEDY,
    )


def _binary(name: str) -> BadDumpError:
    return BadDumpError(
        f"{name} is a binary file, not a text or JSON dump.",
        "Pass the text that `py-spy dump`, faulthandler or `pystack` printed "
        "(a core file is read with `pystack core FILE` or `py-spy dump --core FILE`).",
    )


def _decode(data: bytes, name: str) -> str:
    for magic, kind, tool in _COMPRESSED:
        if data.startswith(magic):
            raise BadDumpError(
                f"{name} is {kind}-compressed.",
                f"Decompress it first (`{tool} {name}`) and pass the result.",
            )
    if data.startswith(b"\x7fELF"):
        raise BadDumpError(
            f"{name} is an ELF binary or core file, not a text dump.",
            f"For a core file run `pystack core {name}` or `py-spy dump --core {name}` "
            "and analyse what they print.",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # PowerShell's `>` writes UTF-16
        text = data.decode("utf-16", errors="replace")
    elif b"\x00" in data:
        raise _binary(name)
    else:
        text = data.decode("utf-8-sig", errors="replace")
    sample = text[: 1024 * 1024]
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 50):
        raise _binary(name)
    return text


def _unrecognised(text: str, name: str) -> BadDumpError:
    if "Traceback (most recent call last):" in text:
        return BadDumpError(
            f"{name} holds a Python exception traceback, not a dump of every thread's stack.",
            "Dump the stacks of the hung process instead: `py-spy dump --pid PID > dump.txt`.",
        )
    return BadDumpError(
        f"{name} is not a dump hangdoctor can read: it has no py-spy, faulthandler or "
        "pystack thread header.",
        _FORMATS_HINT,
    )
