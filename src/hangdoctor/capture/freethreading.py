"""Recognise a free-threaded CPython (3.13t, 3.14t) from outside, before py-spy reads it.

py-spy 0.4 reads an interpreter's memory at the offsets of the default (GIL) build.
A free-threaded build (PEP 703, `--disable-gil`) lays objects and thread states out
differently, and py-spy does not support it yet (benfred/py-spy#711): at best it
fails, at worst it reads stacks that are not there, and a stack read wrong would
give a wrong verdict. So `diagnose` refuses such a target with one sentence.

The build shows in the names of its files, which CPython derives from its ABI flags
(`t` for free-threaded, `td` for a free-threaded debug build): the interpreter
`python3.14t`, the shared runtime `libpython3.14t.so`, the standard library in
`lib/python3.14t/` and extension modules tagged `cpython-314t`. The executable and
the mapped files are read from /proc/PID/exe and /proc/PID/maps, so a renamed,
statically linked free-threaded interpreter is still recognised once it maps one
extension module (from its `lib-dynload` or site-packages). A free-threaded build
with the GIL turned back on (`PYTHON_GIL=1`) is refused too: the memory layout is
that of the build, not of the setting.
"""

from __future__ import annotations

import re

from hangdoctor.capture.procs import ProcessInfo
from hangdoctor.errors import HangdoctorError

__all__ = ["FreeThreadedError", "free_threaded_error", "free_threaded_evidence"]

_PROC = "/proc"
_DOCS = "docs/python-versions.md"
# python3.13t, python3.14td (free-threaded debug)
_EXE = re.compile(r"^python3\.\d+td?$")
_MAPPED = (
    (re.compile(r"/(libpython3\.\d+td?\.so)"), "{} is mapped"),
    (re.compile(r"/(python3\.\d+td?)/"), "its standard library is {}"),
    (re.compile(r"\.(cpython-3\d+td?)-"), "it loads extension modules built for {}"),
)


class FreeThreadedError(HangdoctorError):
    """The target runs a free-threaded CPython, which py-spy cannot read."""


def free_threaded_evidence(info: ProcessInfo) -> str | None:
    """What says `info` runs a free-threaded build ("its interpreter is python3.14t"), or None.

    None also when nothing could be read (another user's process without permission):
    the permission check, which runs first, has its own sentence for that.
    """
    exe = _basename(info.exe)
    if _EXE.match(exe):
        return f"its interpreter is {exe}"
    try:
        with open(f"{_PROC}/{info.pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                for pattern, says in _MAPPED:
                    found = pattern.search(line)
                    if found is not None:
                        return says.format(found.group(1))
    except OSError:
        pass
    return None


def free_threaded_error(info: ProcessInfo) -> FreeThreadedError | None:
    """The refusal for a free-threaded target, or None for a default build."""
    evidence = free_threaded_evidence(info)
    if evidence is None:
        return None
    return FreeThreadedError(
        f"Process {info.pid} ({info.program}) runs a free-threaded Python ({evidence}), "
        "which py-spy cannot read yet: its stacks would be guessed, and so would the verdict.",
        "Diagnose the same service on a default (GIL) build of CPython, e.g. python3.14 "
        f"instead of python3.14t (see {_DOCS}).",
    )


def _basename(path: str | None) -> str:
    if not path:
        return ""
    if path.endswith(" (deleted)"):
        path = path[: -len(" (deleted)")]
    return path.rsplit("/", 1)[-1]
