"""Paths of a target whose working directory is `/` stay absolute."""

from __future__ import annotations

from hangdoctor.analysis.frames import display_path


def test_a_cwd_of_root_keeps_the_leading_slash() -> None:
    """A container's server often runs in `/`: `srv/app/x.py` would read as a relative path."""
    assert display_path("/srv/app/api/routes/x.py", "/") == "/srv/app/api/routes/x.py"
    assert display_path("/srv/app/api/routes/x.py", "//") == "/srv/app/api/routes/x.py"
    # a real cwd still shortens, and library paths still fold to their package path
    assert display_path("/srv/app/api/routes/x.py", "/srv/app") == "api/routes/x.py"
    assert display_path("/usr/lib/python3.11/threading.py", "/") == "threading.py"
