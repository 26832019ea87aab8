"""`[tool.hangdoctor]` settings, --config, and how they select, ignore and extend."""

from __future__ import annotations

from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfigError, ScanOptions, load_config, scan_paths
from hangdoctor.scan.config import matches_glob, parse_target_version

APP = """\
import time
import requests
import mylib
from vendor import Client


async def route(obj):
    time.sleep(1)
    requests.get("http://x")
    mylib.fetch()
    Client().download()
    obj.fetch_sync()
"""


def _scan(root: Path, *paths: Path, **options: object):  # type: ignore[no-untyped-def]
    opts = ScanOptions(**{"use_cache": False, "jobs": 1, **options})  # type: ignore[arg-type]
    return scan_paths(list(paths) or [root], opts, cwd=root)


def _codes(result) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    return [(f.file, f.line, f.code) for f in result.findings]


def test_defaults_without_pyproject(write) -> None:  # type: ignore[no-untyped-def]
    """With no settings every scan code is on and nothing extra is blocking."""
    root = write({"app.py": APP, ".git/HEAD": ""})
    config = load_config([root])
    assert config.root == root.resolve() and config.source is None
    assert _codes(_scan(root)) == [("app.py", 8, "HD201"), ("app.py", 9, "HD202")]


def test_pyproject_settings(write) -> None:  # type: ignore[no-untyped-def]
    """select/ignore/exclude/per-file-ignores/blocking-calls/blocking-methods all apply."""
    root = write(
        {
            "pyproject.toml": """\
[project]
name = "x"
requires-python = ">=3.8"

[tool.hangdoctor]
select = ["HD2"]
ignore = ["HD201"]
exclude = ["generated", "skip_*.py"]
per-file-ignores = { "legacy/**" = ["HD202"] }
blocking-calls = { "mylib.fetch" = "HD202", "vendor.Client.*" = "HD205" }
blocking-methods = { "fetch_sync" = "hd203" }
""",
            "src/app.py": APP,
            "src/skip_me.py": APP,
            "generated/app.py": APP,
            "legacy/old.py": APP,
        }
    )
    config = load_config([root / "src"])
    assert config.root == root.resolve()
    assert config.target_version == (3, 8)  # from requires-python
    result = _scan(root, root / "src", root / "legacy")
    assert _codes(result) == _expected_settings()


def _expected_settings() -> list[tuple[str, int, str]]:
    # legacy/: HD202 ignored per file (requests.get and the mylib.fetch extra)
    return [
        ("legacy/old.py", 11, "HD205"),
        ("legacy/old.py", 12, "HD203"),
        ("src/app.py", 9, "HD202"),
        ("src/app.py", 10, "HD202"),
        ("src/app.py", 11, "HD205"),
        ("src/app.py", 12, "HD203"),
    ]


def test_cli_options_override(write) -> None:  # type: ignore[no-untyped-def]
    """ScanOptions.select replaces the config's select; ignore adds to it."""
    root = write({"pyproject.toml": '[tool.hangdoctor]\nselect = ["HD201"]\n', "app.py": APP})
    assert _codes(_scan(root)) == [("app.py", 8, "HD201")]
    assert _codes(_scan(root, select=("HD2",), ignore=("HD201",))) == [("app.py", 9, "HD202")]


def test_config_file_option(write) -> None:  # type: ignore[no-untyped-def]
    """--config reads a file's [tool.hangdoctor] table or its top level."""
    root = write({"app.py": APP, "hd.toml": 'ignore = ["HD201"]\n'})
    config = load_config([root], root / "hd.toml")
    assert config.ignore == ("HD201",) and config.root == root.resolve()
    result = scan_paths([root], ScanOptions(use_cache=False, jobs=1), config, cwd=root)
    assert _codes(result) == [("app.py", 9, "HD202")]


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("selct = []", "Unknown setting"),
        ('select = ["HD9"]', "matches no scan code"),
        ("select = 3", "list of strings"),
        ('blocking-calls = { "a.b" = "HD301" }', "not a blocking code"),
        ('per-file-ignores = ["x"]', "must be a table"),
        ('target-version = "python4"', "not a Python version"),
    ],
)
def test_bad_settings_are_one_sentence(write, table: str, words: str) -> None:  # type: ignore[no-untyped-def]
    """Each invalid setting raises ScanConfigError naming it, with a remedy."""
    root = write({"pyproject.toml": f"[tool.hangdoctor]\n{table}\n", "app.py": APP})
    with pytest.raises(ScanConfigError) as exc:
        load_config([root])
    assert words in exc.value.message and exc.value.remedy


def test_invalid_toml(write) -> None:  # type: ignore[no-untyped-def]
    """A --config file that is not TOML is reported, not a traceback."""
    root = write({"bad.toml": "select = [\n"})
    with pytest.raises(ScanConfigError, match="not valid TOML"):
        load_config([root], root / "bad.toml")


def test_nearest_pyproject_with_a_table_wins(write) -> None:  # type: ignore[no-untyped-def]
    """A sub-package's pyproject.toml without [tool.hangdoctor] is passed over."""
    root = write(
        {
            "pyproject.toml": '[tool.hangdoctor]\nignore = ["HD202"]\n',
            "sub/pyproject.toml": '[project]\nname = "sub"\n',
            "sub/app.py": APP,
        }
    )
    config = load_config([root / "sub" / "app.py"])
    assert config.root == root.resolve() and config.ignore == ("HD202",)


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("migrations", "app/migrations/0001.py", True),
        ("*_pb2.py", "api/x_pb2.py", True),
        ("api/*.py", "api/x.py", True),
        ("api/*.py", "other/api/x.py", False),
        ("tests/**", "tests/a/b.py", True),
        ("**/gen/*.py", "a/b/gen/c.py", True),
        ("gen/", "a/gen/c.py", True),
        ("x.py", "a/xx.py", False),
    ],
)
def test_globs(pattern: str, path: str, hit: bool) -> None:
    """Patterns without a slash match any component; with one they are anchored."""
    assert matches_glob(pattern, path) is hit


def test_target_versions() -> None:
    """py39, 3.9 and 39 all mean Python 3.9."""
    assert parse_target_version("py39") == parse_target_version("3.9") == (3, 9)
    assert parse_target_version("py312") == (3, 12)
