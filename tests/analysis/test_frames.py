"""Placing frames: user code, standard library, installed packages; matching signatures."""

from __future__ import annotations

import pytest

from hangdoctor.analysis.frames import display_path, frame_matches, is_user_frame, lib_path
from hangdoctor.catalog.rule import FramePattern
from hangdoctor.model import Frame


def _f(function: str, file: str, short: str | None = None) -> Frame:
    return Frame(function=function, file=file, line=1, short_file=short)


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("/root/.pyenv/versions/3.11.7/lib/python3.11/threading.py", "threading.py"),
        ("/usr/lib/python3.12/concurrent/futures/thread.py", "concurrent/futures/thread.py"),
        (
            "/srv/.venv/lib/python3.13/site-packages/starlette/responses.py",
            "starlette/responses.py",
        ),
        ("/usr/lib/python3/dist-packages/requests/api.py", "requests/api.py"),
        ("<frozen importlib._bootstrap>", "importlib/_bootstrap.py"),
        ("/srv/.venv/bin/uvicorn", "uvicorn"),
        ("threading.py", "threading.py"),  # py-spy text dumps shorten paths
        ("starlette/routing.py", "starlette/routing.py"),
    ],
)
def test_library_paths(file: str, expected: str) -> None:
    """Library frames get a path relative to their root, whatever the install layout."""
    assert lib_path(_f("x", file)) == expected
    assert not is_user_frame(_f("x", file))


@pytest.mark.parametrize(
    "file", ["/srv/app/api/routes/stream.py", "api/routes/stream.py", "app.py", "<string>"]
)
def test_user_paths(file: str) -> None:
    """The service's own files are user code."""
    assert is_user_frame(_f("gen", file))


def test_signature_matches_qualified_and_bare_names() -> None:
    """py-spy qualifies methods (Thread.join); faulthandler prints bare names (join)."""
    pattern = FramePattern("threading.py", "Thread.join")
    stdlib = "/usr/lib/python3.11/threading.py"
    assert frame_matches(_f("Thread.join", stdlib), pattern)
    assert frame_matches(_f("join", stdlib), pattern)
    assert not frame_matches(_f("Other.join", stdlib), pattern)
    assert not frame_matches(_f("Thread.join", "/srv/app/threading.py"), pattern)


def test_package_pattern() -> None:
    """A pattern ending in / matches any frame of that package."""
    pattern = FramePattern("requests/")
    assert frame_matches(
        _f("Session.send", "/v/lib/python3.12/site-packages/requests/sessions.py"), pattern
    )
    assert not frame_matches(_f("get", "/v/lib/python3.12/site-packages/requestsx/api.py"), pattern)


def test_display_path() -> None:
    """Paths show relative to the target's cwd, library paths relative to their root."""
    assert display_path("/srv/app/api/x.py", "/srv/app") == "api/x.py"
    assert display_path("/usr/lib/python3.11/threading.py", "/srv/app") == "threading.py"
    assert display_path("/elsewhere/y.py", "/srv/app") == "/elsewhere/y.py"


@pytest.mark.parametrize(
    "frame",
    [
        Frame("0x7f533c4a3f16", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, module="libc.so.6"),
        Frame("take_gil", "Python/ceval_gil.c", 331, module="/usr/bin/python3.11"),
        Frame("poll", "src/poll.rs", 12),
    ],
    ids=["shared-lib", "c-source", "rust"],
)
def test_native_frames_are_never_user_code(frame: Frame) -> None:
    """py-spy --native frames (C, Rust, shared libraries) are not the user's line."""
    assert not is_user_frame(frame)
