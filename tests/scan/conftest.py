"""Shared helpers for the scan tests: run a scan with an isolated config and no cache."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig, ScanOptions, ScanResult, scan_paths

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "scan"
MARKER = re.compile(r"# error: (HD\d{3}(?:\s*,\s*HD\d{3})*)")
PHASE_MARKER = re.compile(r"# (startup|shutdown): (HD\d{3}(?:\s*,\s*HD\d{3})*)")


def expected_markers(path: Path) -> set[tuple[int, str]]:
    """(line, code) for every `# error: HDxxx` marker in the file."""
    out: set[tuple[int, str]] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = MARKER.search(line)
        if m:
            out.update((number, c.strip()) for c in m.group(1).split(","))
    return out


def phase_markers(path: Path) -> set[tuple[int, str, str]]:
    """(line, code, phase) for every `# startup: HDxxx` / `# shutdown: HDxxx` marker."""
    out: set[tuple[int, str, str]] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = PHASE_MARKER.search(line)
        if m:
            out.update((number, c.strip(), m.group(1)) for c in m.group(2).split(","))
    return out


def installed(name: str) -> Path | None:
    """The source folder of an installed package, or None."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def run_scan(
    paths: Sequence[Path],
    root: Path,
    *,
    cwd: Path | None = None,
    config: ScanConfig | None = None,
    **options: object,
) -> ScanResult:
    """Scan with settings rooted at `root` (no pyproject lookup) and no cache by default."""
    opts = ScanOptions(**{"use_cache": False, "jobs": 1, **options})  # type: ignore[arg-type]
    return scan_paths(list(paths), opts, config or ScanConfig(root=root), cwd=cwd or root)


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write files under tmp_path from a {relative path: text} mapping."""

    def _write(files: dict[str, str]) -> Path:
        for rel, text in files.items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return tmp_path

    return _write
