"""Where a frame's code lives: the user's project, the standard library, or a package.

Live captures and faulthandler give absolute paths; py-spy's text dumps give
short ones (`threading.py`, `starlette/responses.py`, `app.py`), so a short
path is placed by its first component.

hangdoctor's own frames (its middleware, its executors) are a library's like any other,
also when it runs from a checkout rather than site-packages; the example app bundled in
its wheel (`hangdoctor/_examples/newsroom`) is not: to `hangdoctor demo` it is the user's
code, the code whose line a diagnosis must name.
"""

from __future__ import annotations

import functools
import os
import re
import sys

from hangdoctor.catalog.rule import FramePattern
from hangdoctor.model import Frame

__all__ = [
    "FRAMEWORK_PACKAGES",
    "display_path",
    "frame_matches",
    "is_native_file",
    "is_native_frame",
    "is_stdlib_frame",
    "is_user_frame",
    "lib_path",
    "package_of",
]

_SITE = re.compile(r"[/\\](?:site|dist)-packages[/\\](.+)$")
_STDLIB = re.compile(r"[/\\]lib[/\\]python\d+(?:\.\d+)?t?[/\\](.+)$", re.IGNORECASE)
_FROZEN = re.compile(r"^<frozen ([\w.]+)>$")
# Relative to site-packages: an app shipped inside hangdoctor's package for the demo.
_BUNDLED_APP = re.compile(r"^hangdoctor/_examples/")
# This installation's package directory: an editable install runs it from a checkout's src/.
_OWN_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# Packages a web service runs on; their frames are never "the user's line".
FRAMEWORK_PACKAGES = frozenset(
    {
        "anyio",
        "asgiref",
        "click",
        "fastapi",
        "granian",
        "gunicorn",
        "h11",
        "h2",
        "httpcore",
        "httptools",
        "httpx",
        "hypercorn",
        "pydantic",
        "pydantic_core",
        "requests",
        "sniffio",
        "sse_starlette",
        "starlette",
        "urllib3",
        "uvicorn",
        "uvloop",
        "watchfiles",
        "websockets",
        "wsproto",
        "typer",
        "hangdoctor",
    }
)

_STDLIB_NAMES = frozenset(sys.stdlib_module_names)


# pure in `path`, and asked for the same few hundred paths over and over (every frame of
# every task of a snapshot): cached
@functools.lru_cache(maxsize=4096)
def _relative(path: str) -> tuple[str | None, str | None]:
    """(kind, path relative to its root); kind is 'stdlib', 'site' or None (user)."""
    m = _SITE.search(path)
    if m:
        rel = m.group(1).replace("\\", "/")
        return (None, None) if _BUNDLED_APP.match(rel) else ("site", rel)
    if path.startswith(_OWN_PACKAGE):
        rel = "hangdoctor/" + path[len(_OWN_PACKAGE) :].replace("\\", "/")
        return (None, None) if _BUNDLED_APP.match(rel) else ("site", rel)
    m = _STDLIB.search(path)
    if m:
        return "stdlib", m.group(1).replace("\\", "/")
    m = _FROZEN.match(path)
    if m:
        return "stdlib", m.group(1).replace(".", "/") + ".py"
    if path.startswith("<"):  # <string>, <stdin>: code the user ran
        return None, None
    if not path.startswith("/") and not re.match(r"^[A-Za-z]:[/\\]", path):
        first = re.split(r"[/\\]", path, maxsplit=1)[0]
        top = first[:-3] if first.endswith(".py") else first
        if top in _STDLIB_NAMES:
            return "stdlib", path
        if top in FRAMEWORK_PACKAGES and not _BUNDLED_APP.match(path.replace("\\", "/")):
            return "site", path
    elif re.search(r"[/\\]bin[/\\][^/\\]+$", path) and not path.endswith(".py"):
        return "site", path.rsplit("/", 1)[-1]  # a console script (bin/uvicorn)
    return None, None


def _path_of(frame: Frame) -> str:
    return frame.file if frame.file and frame.file != "?" else (frame.short_file or "")


def lib_path(frame: Frame) -> str | None:
    """The path relative to the stdlib or site-packages root; None for user code."""
    kind, rel = _relative(_path_of(frame))
    if kind is None and frame.short_file and frame.short_file != frame.file:
        kind, rel = _relative(frame.short_file)
    return rel if kind else None


def is_stdlib_frame(frame: Frame) -> bool:
    kind, _ = _relative(_path_of(frame))
    return kind == "stdlib"


# Native frames (C, C++, Rust, shared libraries; py-spy --native) carry no Python line the
# analysis can use, and their paths would otherwise pass for the user's own code.
_NATIVE_FILE = re.compile(
    r"(?:\.(?:c|cc|cpp|cxx|h|hh|hpp|rs|S|s|asm)|\.so(?:\.\d+)*|\.dylib|\.dll|\.pyd|\.exe)$"
)


@functools.lru_cache(maxsize=4096)
def is_native_file(path: str) -> bool:
    """True for the file of a native frame (a C source or a shared library)."""
    return bool(_NATIVE_FILE.search(path))


def is_native_frame(frame: Frame) -> bool:
    """A C/C++/Rust frame from `py-spy --native`: py-spy names its shared library in `module`."""
    return frame.module is not None or is_native_file(frame.file)


def is_user_frame(frame: Frame) -> bool:
    """True for the user's own code: neither the standard library, a package, nor native code."""
    return _is_user_place(frame.file, frame.short_file, frame.module is not None)


# asked for every frame of every task of a snapshot, of a few hundred distinct places
@functools.lru_cache(maxsize=8192)
def _is_user_place(file: str, short_file: str | None, native_module: bool) -> bool:
    frame = Frame(function="", file=file, line=0, short_file=short_file)
    return lib_path(frame) is None and not native_module and not is_native_file(file)


def package_of(frame: Frame) -> str | None:
    """Top-level package or module of a library frame (`starlette`, `asyncio`)."""
    rel = lib_path(frame)
    if rel is None:
        return None
    first = rel.split("/", 1)[0]
    return first[:-3] if first.endswith(".py") else first


def frame_matches(frame: Frame, pattern: FramePattern) -> bool:
    """Match by relative path and qualified name; bare names (faulthandler) match the last part."""
    rel = lib_path(frame)
    if rel is None:
        return False
    if pattern.path.endswith("/"):
        if not rel.startswith(pattern.path):
            return False
    elif rel != pattern.path:
        return False
    if pattern.function is None:
        return True
    if frame.function == pattern.function:
        return True
    return "." not in frame.function and pattern.function.rsplit(".", 1)[-1] == frame.function


def display_path(path: str, cwd: str | None = None) -> str:
    """A path as a person wants to read it: relative to the target's cwd or its library root."""
    if cwd and cwd.strip("/"):  # under a cwd of `/`, `srv/app/x.py` would hide the root
        base = cwd.rstrip("/") + "/"
        if path.startswith(base):
            return path[len(base) :]
    kind, rel = _relative(path)
    if kind is not None and rel is not None:
        return rel
    return path
