"""Bad input never crashes the scan: it is reported and the rest is scanned."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig
from tests.conftest import skip_unless_runs_as
from tests.scan.conftest import ROOT, run_scan

BLOCKING = "import time\n\n\nasync def f():\n    time.sleep(1)\n"


def _problems(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {p.path: p.message for p in result.problems}


def test_syntax_error_is_reported_and_the_rest_scanned(write) -> None:  # type: ignore[no-untyped-def]
    """A file that does not parse is an error with its line; other files still report."""
    root = write({"bad.py": "x = 1\ndef f(:\n", "good.py": BLOCKING})
    result = run_scan([root], root)
    assert [(f.file, f.code) for f in result.findings] == [("good.py", "HD201")]
    (problem,) = result.errors
    assert (problem.path, problem.line) == ("bad.py", 2)
    assert "syntax error" in problem.message
    assert result.exit_code == 1  # findings win


def test_only_failures_exit_2(write) -> None:  # type: ignore[no-untyped-def]
    """No findings but a file that could not be scanned: exit 2; all clean: exit 0."""
    root = write({"bad.py": "def f(:\n", "clean.py": "x = 1\n"})
    assert run_scan([root], root).exit_code == 2
    assert run_scan([root / "clean.py"], root).exit_code == 0


def test_pep263_latin1_file(tmp_path: Path) -> None:
    """A Latin-1 file with a coding line is decoded and scanned; columns count characters."""
    source = (
        "# -*- coding: latin-1 -*-\nimport time\n\n\nasync def f():\n    s = 'é'; time.sleep(1)\n"
    )
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    result = run_scan([tmp_path], tmp_path)
    assert result.problems == ()
    (finding,) = result.findings
    assert (finding.line, finding.col) == (6, 13)
    assert finding.source == "s = 'é'; time.sleep(1)"


def test_undeclared_non_utf8_file(tmp_path: Path) -> None:
    """Latin-1 bytes without a coding line: reported as not valid UTF-8."""
    (tmp_path / "bad.py").write_bytes("x = 'é'\n".encode("latin-1"))
    (problem,) = run_scan([tmp_path], tmp_path).errors
    assert "is not valid UTF-8 and declares no encoding" in problem.message


def test_binary_file_named_py(tmp_path: Path) -> None:
    """A binary file with a .py name is reported as binary."""
    (tmp_path / "blob.py").write_bytes(bytes(range(256)) * 4)
    (problem,) = run_scan([tmp_path], tmp_path).errors
    assert "binary" in problem.message


def test_big_generated_file_is_not_scanned_over_the_limit(tmp_path: Path) -> None:
    """A 5 MB generated module is over the 2 MB default: reported as not scanned, never read
    (so never "no problems"); with a higher max_file_size it is scanned like any other."""
    body = "".join(
        f"VALUE_{i} = {{'key': {i}, 'name': 'item number {i}'}}\n" for i in range(110_000)
    )
    path = tmp_path / "generated.py"
    path.write_text(body + "\n\n" + BLOCKING)
    assert path.stat().st_size > 5 * 1024 * 1024
    result = run_scan([tmp_path], tmp_path)
    (problem,) = result.errors
    assert problem.path == "generated.py" and "over the 2 MB limit" in problem.message
    assert result.findings == () and result.exit_code == 2
    assert (result.stats.files, result.stats.parsed) == (0, 0)
    bigger = run_scan([tmp_path], tmp_path, config=ScanConfig(tmp_path, max_file_size=8 << 20))
    assert bigger.problems == ()
    assert [f.code for f in bigger.findings] == ["HD201"]


def test_deeply_nested_code(tmp_path: Path) -> None:
    """Code nested beyond the parser's limits is reported, not a crash."""
    (tmp_path / "deep.py").write_text("x = " + "(" * 5000 + ")" * 5000 + "\n")
    (tmp_path / "good.py").write_text(BLOCKING)
    result = run_scan([tmp_path], tmp_path)
    assert [f.file for f in result.findings] == ["good.py"]
    assert "deep.py" in _problems(result)


def test_symlink_loop_and_outside_links(tmp_path: Path) -> None:
    """Loops are visited once, links out of the roots are skipped, broken links noted."""
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "a.py").write_text(BLOCKING)
    (project / "pkg" / "again").symlink_to(project / "pkg")  # a directory loop
    (project / "self.py").symlink_to(project / "self.py")  # a link to itself
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text(BLOCKING)
    (project / "out").symlink_to(outside)
    (project / "out.py").symlink_to(outside / "secret.py")
    result = run_scan([project], project)
    assert [f.file for f in result.findings] == ["pkg/a.py"]
    notes = _problems(result)
    assert "loop" in notes["pkg/again"]
    assert "loop" in notes["self.py"]
    assert "outside" in notes["out"] and "outside" in notes["out.py"]
    assert result.errors == () and result.exit_code == 1


def test_symlink_inside_the_roots_is_followed_once(tmp_path: Path) -> None:
    """A link to a file that is also scanned directly does not double the findings."""
    (tmp_path / "a.py").write_text(BLOCKING)
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    assert len(run_scan([tmp_path], tmp_path).findings) == 1


def test_missing_path(tmp_path: Path) -> None:
    """A path that does not exist is an error; with nothing else found, exit 2."""
    result = run_scan([tmp_path / "nope.py"], tmp_path)
    assert "does not exist" in _problems(result)["nope.py"]
    assert result.exit_code == 2


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory user 65534 can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="hd-scan-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root")
def test_unreadable_file(shared_dir: Path) -> None:
    """A file the user cannot read is reported; the readable ones are still scanned."""
    (shared_dir / "good.py").write_text(BLOCKING)
    secret = shared_dir / "secret.py"
    secret.write_text(BLOCKING)
    secret.chmod(0o000)
    for p in shared_dir.iterdir():
        if p != secret:
            p.chmod(0o644)
    proc = subprocess.run(
        [
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            sys.executable, "-m", "hangdoctor", "scan", "--no-cache", "--format", "concise",
            str(shared_dir),
        ],
        cwd=shared_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(shared_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    skip_unless_runs_as("65534", proc)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("good.py:5:5: HD201")
    assert lines[1] == "secret.py:1:1: error: cannot be read (Permission denied)."
