"""Placing hangdoctor's own frames and the example app its wheel bundles.

The wheel ships the newsroom example inside the hangdoctor package
(`site-packages/hangdoctor/_examples/newsroom`) for `hangdoctor demo`: that app is the
user's code there, while hangdoctor's own modules stay library frames, installed or run
from a checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hangdoctor
from hangdoctor.analysis.frames import display_path, is_user_frame, lib_path, package_of
from hangdoctor.model import Frame

SITE = "/srv/.venv/lib/python3.12/site-packages"
BUNDLED = f"{SITE}/hangdoctor/_examples/newsroom"


def _f(file: str, short: str | None = None) -> Frame:
    return Frame(function="gen", file=file, line=43, short_file=short)


@pytest.mark.parametrize(
    ("file", "short"),
    [
        (f"{BUNDLED}/api/routes/stream.py", None),
        (f"{BUNDLED}/api/routes/stream.py", "hangdoctor/_examples/newsroom/api/routes/stream.py"),
        ("hangdoctor/_examples/newsroom/api/routes/stream.py", None),  # a py-spy text dump
    ],
)
def test_bundled_example_is_user_code(file: str, short: str | None) -> None:
    """The example app inside an installed hangdoctor is the code whose line is named."""
    frame = _f(file, short)
    assert is_user_frame(frame)
    assert lib_path(frame) is None and package_of(frame) is None


def test_bundled_example_shows_relative_to_the_servers_cwd() -> None:
    """The demo runs the app from its own directory: its files read `api/routes/stream.py`."""
    assert display_path(f"{BUNDLED}/api/routes/stream.py", BUNDLED) == "api/routes/stream.py"


@pytest.mark.parametrize(
    ("file", "rel"),
    [
        (f"{SITE}/hangdoctor/runtime/middleware.py", "hangdoctor/runtime/middleware.py"),
        (f"{SITE}/hangdoctor/executors.py", "hangdoctor/executors.py"),
        ("hangdoctor/runtime/middleware.py", "hangdoctor/runtime/middleware.py"),  # text dump
        (  # this installation, editable from a checkout or not
            str(Path(hangdoctor.__file__).parent / "runtime" / "middleware.py"),
            "hangdoctor/runtime/middleware.py",
        ),
    ],
)
def test_hangdoctors_own_frames_fold(file: str, rel: str) -> None:
    """hangdoctor's own modules are a library's frames, installed or run from a checkout."""
    frame = _f(file)
    assert not is_user_frame(frame)
    assert package_of(frame) == "hangdoctor"
    assert lib_path(frame) == rel
