"""Docs, README, examples and code link only to places that exist and install only what can be.

hangdoctor has no public repository and is not on PyPI yet: a URL of "its"
repository, a pre-commit `rev` tag or `pip install hangdoctor` would send a
reader nowhere. URLs must be real third-party pages, loopback, or reserved
example names (RFC 2606/6761: `.example`, `.test`, `example.com`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".md", ".py", ".json", ".yml", ".yaml", ".toml", ".txt", ".html", ".cfg"}
PLACEHOLDER = "github.com/hangdoctor/hangdoctor"
URL = re.compile(r"\bhttps?://([A-Za-z0-9.-]+)(/[^\s)`'\"<>]*)?")
# `pip install hangdoctor`, `pip install -U hangdoctor`, `pip install 'hangdoctor[x]'`: PyPI names
PYPI_INSTALL = re.compile(r"pip install(?:\s+-\S+)*\s+['\"]?hangdoctor\b")
REAL = {
    "https://github.com/benfred/py-spy",
    "https://libcst.readthedocs.io/",
    "https://json.schemastore.org/sarif-2.1.0.json",
    "https://json-schema.org/draft/2020-12/schema",  # `$schema` of src/hangdoctor/schemas/
}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0"}


def _files() -> list[Path]:
    out = [ROOT / "README.md", ROOT / "action.yml"]
    for top in ("docs", "src", "examples"):
        out += [
            p
            for p in sorted((ROOT / top).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return [p for p in out if p.is_file()]


def _allowed(host: str, url: str) -> bool:
    if host in LOCAL_HOSTS or url in REAL:
        return True
    return host.endswith((".example", ".test")) or host in {"example.com", "example.org"}


FILES = _files()


def test_the_files_are_found() -> None:
    """The walk sees the docs, the README, the sources and the action (else it checks nothing)."""
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"README.md", "docs/scan.md", "docs/permissions.md", "action.yml"} <= names
    assert "src/hangdoctor/report/scan_sarif.py" in names and len(names) > 50


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_placeholder_or_invented_url(path: Path) -> None:
    """No file names the placeholder repository, a URL that is not known to exist, or PyPI."""
    text = path.read_text(encoding="utf-8", errors="replace")
    assert PLACEHOLDER not in text
    invented = [
        m.group(0) for m in URL.finditer(text) if not _allowed(m.group(1), m.group(0).rstrip(".,"))
    ]
    assert not invented, f"unknown URLs (add real ones to REAL): {invented}"
    assert not PYPI_INSTALL.search(text), "hangdoctor is not on PyPI: install from a checkout"
    assert not re.search(r"rev:\s*v\d", text), "no hangdoctor release is tagged yet"


def test_the_checks_catch_what_they_are_for() -> None:
    """The patterns match the strings this file exists to keep out."""
    assert PLACEHOLDER in "repo: https://github.com/hangdoctor/hangdoctor"
    assert PYPI_INSTALL.search("sh -c 'pip install hangdoctor && hangdoctor diagnose'")
    assert PYPI_INSTALL.search("pip install -U 'hangdoctor[prometheus]'")
    assert not PYPI_INSTALL.search("pip install '/path/to/hangdoctor[prometheus]'")
    m = URL.search("see https://hangdoctor.dev/rules for more")
    assert m is not None and not _allowed(m.group(1), m.group(0))
