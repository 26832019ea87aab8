"""`hangdoctor explain`: the catalog entry, as the docs have it."""

from __future__ import annotations

import pytest
from tests.conftest import run_hangdoctor

from hangdoctor.catalog import all_rules


def test_explain_hd101() -> None:
    """The entry has the summary, why, the bad and good examples and the fix."""
    out = run_hangdoctor("explain", "HD101")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "executor-shutdown-on-loop" in text
    assert "shutdown(wait=True)" in text
    assert "cancel_futures=True" in text
    assert "3.9" in text


def test_explain_by_name_and_lowercase() -> None:
    """A kebab name or a lower-case code finds the same entry."""
    by_name = run_hangdoctor("explain", "time-sleep-in-async")
    by_code = run_hangdoctor("explain", "hd201")
    assert by_name.returncode == by_code.returncode == 0
    assert by_name.stdout == by_code.stdout


def test_list_names_every_code() -> None:
    """`explain --list` lists every catalog code."""
    out = run_hangdoctor("explain", "--list")
    assert out.returncode == 0, out.stderr
    for rule in all_rules():
        assert rule.code in out.stdout


@pytest.mark.parametrize("args", [["--help"], ["diagnose", "--help"], ["analyze", "--help"]])
def test_help(args: list[str]) -> None:
    """--help works for the tool and each command and says what it does."""
    out = run_hangdoctor(*args)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_version() -> None:
    """--version prints the version."""
    from hangdoctor import __version__

    out = run_hangdoctor("--version")
    assert out.returncode == 0
    assert __version__ in out.stdout
