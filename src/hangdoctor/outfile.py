"""Every file hangdoctor writes goes through here: whole or not at all, and checked first.

`write_atomic` writes the bytes to a temporary file beside the target, flushes
them to disk, and renames it over the target. A reader (or a crash, or a full
disk half way) never sees half a file, and a failure leaves the old file as it
was. An existing file keeps its mode (and, as root, its owner); a new one gets
the usual 0666 minus the umask, as `open(path, "w")` would, not mkstemp's 0600.

`check_writable` says why a path cannot be written before the expensive work
starts (sampling a live process, scanning a tree), so the result is not thrown
away at the end.

Standard library only: the in-process runtime may use it inside a service.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["check_writable", "is_read_only", "reason", "write_atomic"]

_NEW_FILE_MODE = 0o666  # the umask applies, as for open(path, "w")


def reason(exc: OSError) -> str:
    """The operating system's words for a failed write: "No space left on device"."""
    return exc.strerror or str(exc)


def _no_write_bit(st: os.stat_result) -> bool:
    return not stat.S_IMODE(st.st_mode) & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def is_read_only(path: str | os.PathLike[str]) -> bool:
    """The file exists and may not be written by us; root included when it has no write bit.

    A rename in a writable directory could replace it anyway, but a read-only
    mode says "do not change me", and ruff and black honour it too.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return _no_write_bit(st) or not os.access(path, os.W_OK)


def check_writable(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be written as an output file, as the end of a sentence; None if it can.

    The reason reads after the path: "... cannot be written: <reason>."
    """
    p = Path(path)
    if str(p) in ("", "."):
        return "it is not a file name"
    try:
        real = Path(os.path.realpath(p))
        if real.is_dir():
            return "it is a directory"
        parent = real.parent
        if not parent.exists():
            return f"the directory {parent} does not exist"
        if not parent.is_dir():
            return f"{parent} is not a directory"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"the directory {parent} is not writable"
        if real.exists():
            st = real.stat()
            if not stat.S_ISREG(st.st_mode):
                return "it is not a regular file"
            if is_read_only(real):
                return "the file is read-only"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return reason(exc) if isinstance(exc, OSError) else "it is not a valid path"
    return None


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, durable: bool = True) -> Path:
    """Replace the file at `path` by `data` (str: UTF-8) in one rename; the path written.

    A symlink stays a symlink: the file it points to is replaced. Raises OSError
    (the target is untouched and no temporary file is left) when it cannot be
    done. `durable=False` skips the fsyncs, for caches that are simply rebuilt.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    real = Path(os.path.realpath(path))
    try:
        old: os.stat_result | None = real.stat()
    except FileNotFoundError:
        old = None
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(real))
    tmp = real.with_name(f".{real.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _NEW_FILE_MODE
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            if old is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode))
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    os.fchown(fh.fileno(), old.st_uid, old.st_gid)
            fh.write(raw)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _sync_directory(real.parent)
    return real


def _sync_directory(folder: Path) -> None:
    """Make the rename itself survive a power cut; not every filesystem allows it."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
