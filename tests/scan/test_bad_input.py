"""`hangdoctor scan` given bad input: one sentence and exit 2, never a false all-clear.

A missing path, a broken `[tool.hangdoctor]`, an output that cannot be written
(a missing directory, a full disk), a read-only file under `--fix`, a generated
module too big to parse: each is said, and nothing that was not looked at is
reported as clean.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from hangdoctor.cli.main import cli
from tests.tmpfs import fill, tiny_tmpfs

BLOCKING = "import time\n\n\nasync def handler():\n    time.sleep(1)\n"


def _scan(*args: str, cwd: Path) -> Result:
    """`hangdoctor scan ARGS` in-process, run in `cwd`."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, ["scan", *args], catch_exceptions=False)
    finally:
        os.chdir(old)


def _one_sentence_exit_2(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "failed unexpectedly" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "remedy: " in result.stderr
    assert "No problems found" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    """GIVEN a path that does not exist WHEN scanned THEN one sentence naming it, exit 2,
    and no "No problems found" (it was never looked at)."""
    (tmp_path / "app.py").write_text(BLOCKING)
    result = _scan("--no-cache", "app.py", "nonexistent", cwd=tmp_path)
    _one_sentence_exit_2(result, "nonexistent does not exist.")
    assert result.stdout == ""


def test_counts_add_up_when_a_file_cannot_be_scanned(tmp_path: Path) -> None:
    """A file that cannot be parsed is "could not be scanned", not also "scanned": the
    scanned and the not-scanned add up to the files there are."""
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    result = _scan("--no-cache", ".", cwd=tmp_path)
    assert result.exit_code == 2
    flat = " ".join(result.stdout.split())  # the summary wraps at the terminal's width
    assert "1 file scanned (1 parsed)" in flat and "1 file could not be scanned" in flat, flat
    assert "No problems found;" not in result.stdout, result.stdout
    data = json.loads(_scan("--no-cache", "--format", "json", ".", cwd=tmp_path).stdout)
    assert data["stats"]["files"] + len(data["problems"]) == 2


def test_a_broken_tool_hangdoctor_table_is_an_error(tmp_path: Path) -> None:
    """GIVEN a pyproject.toml with a TOML syntax error in [tool.hangdoctor] below a parent
    project with valid settings WHEN scanned THEN exit 2 naming the file and the line, and
    the parent's settings are not used instead."""
    (tmp_path / "pyproject.toml").write_text('[tool.hangdoctor]\nignore = ["HD201"]\n')
    project = tmp_path / "service"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "service"\n\n[tool.hangdoctor]\nselect = ["HD2"\nignore = []\n'
    )
    (project / "app.py").write_text(BLOCKING)
    result = _scan("--no-cache", "app.py", cwd=project)
    _one_sentence_exit_2(result, str(project / "pyproject.toml"), "not valid TOML", "line 6")


def test_output_into_a_missing_directory(tmp_path: Path) -> None:
    """`scan -o` (text) into a directory that does not exist says so before scanning,
    exit 2, and leaves no file behind."""
    (tmp_path / "app.py").write_text(BLOCKING)
    result = _scan("--no-cache", "-o", "nodir/report.txt", "app.py", cwd=tmp_path)
    _one_sentence_exit_2(result, "nodir", "does not exist")
    assert not (tmp_path / "nodir").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.py"]


def test_text_report_to_a_file_is_the_whole_report(tmp_path: Path) -> None:
    """`scan -o FILE` (text) writes the report a terminal would show, mode 0644 as any new
    file, and nothing else in the directory."""
    (tmp_path / "app.py").write_text(BLOCKING)
    out = tmp_path / "reports"
    out.mkdir()
    result = _scan("--no-cache", "-o", "reports/scan.txt", "app.py", cwd=tmp_path)
    assert result.exit_code == 1 and result.stdout == ""
    text = (out / "scan.txt").read_text()
    assert "HD201" in text and text.rstrip().endswith("`--fix`.")
    assert [p.name for p in out.iterdir()] == ["scan.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "scan.txt").stat().st_mode) == 0o666 & ~umask


def test_json_report_on_a_full_disk_keeps_the_old_report(tmp_path: Path) -> None:
    """GIVEN a report written earlier WHEN the disk is full for the next one THEN exit 2
    with the reason, and the old report is still there, whole (no cut-off file)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text(BLOCKING)
    many = "".join(f"    time.sleep({i})\n" for i in range(200))
    with tiny_tmpfs(tmp_path / "disk") as disk:
        first = _scan("--no-cache", "--format", "json", "-o", str(disk / "r.json"), ".", cwd=src)
        assert first.exit_code == 1, first.stderr
        old = (disk / "r.json").read_bytes()
        assert json.loads(old)["findings"]
        (src / "app.py").write_text(BLOCKING + many)
        fill(disk)
        result = _scan("--no-cache", "--format", "json", "-o", str(disk / "r.json"), ".", cwd=src)
        _one_sentence_exit_2(result, "r.json", "No space left on device")
        assert (disk / "r.json").read_bytes() == old
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "r.json"]


def test_fix_refuses_a_read_only_file(tmp_path: Path) -> None:
    """`scan --fix` on a 0444 file leaves it as it is (content and mode) and says it is
    read-only; the finding stays, so the exit code is 1 as for any unfixed finding."""
    path = tmp_path / "app.py"
    path.write_text(BLOCKING)
    path.chmod(0o444)
    result = _scan("--no-cache", "--fix", "app.py", cwd=tmp_path)
    assert result.exit_code == 1, result.stdout
    assert "Fixed 0 problems." in result.stdout
    assert "app.py:5: HD201 not fixed: The file is read-only" in result.stdout
    assert path.read_text() == BLOCKING
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_file_size_limit_from_option_and_settings(tmp_path: Path) -> None:
    """A 3 MB module is over the 2 MB default: reported as not scanned (exit 2, not "no
    problems"); `--max-file-size 4MB` or `max-file-size = "4MB"` scans it; a size that is
    not one is a usage error."""
    body = "".join(f"VALUE_{i} = {{'key': {i}, 'name': 'item {i}'}}\n" for i in range(80_000))
    (tmp_path / "generated.py").write_text(body + "\n\n" + BLOCKING)
    assert 2 << 20 < (tmp_path / "generated.py").stat().st_size < 4 << 20
    default = _scan("--no-cache", "generated.py", cwd=tmp_path)
    assert default.exit_code == 2
    assert "over the 2 MB limit, so it was not scanned" in default.stdout
    assert "0 files scanned" in default.stdout and "1 file could not be scanned" in default.stdout
    raised = _scan("--no-cache", "--max-file-size", "4MB", "generated.py", cwd=tmp_path)
    assert raised.exit_code == 1 and "HD201" in raised.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.hangdoctor]\nmax-file-size = "4MB"\n')
    assert _scan("--no-cache", "generated.py", cwd=tmp_path).exit_code == 1
    bad = _scan("--max-file-size", "lots", "generated.py", cwd=tmp_path)
    assert bad.exit_code == 2 and "'lots' is not a file size" in bad.stderr


def test_a_30_mb_generated_module_costs_neither_a_minute_nor_gigabytes(tmp_path: Path) -> None:
    """The 30 MB module that took 58 s and 6 GB is skipped unread: the whole CLI run (a real
    process) stays under 30 s and 400 MB, and says why the file was not scanned."""
    line = "ROW_{0} = ({0}, 'a generated value that is quite long {0}', [{0}, {0}])\n"
    with (tmp_path / "big.py").open("w") as fh:
        for i in range(390_000):
            fh.write(line.format(i))
    assert 30 << 20 < (tmp_path / "big.py").stat().st_size < 32 << 20
    runner = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(p.returncode, time.monotonic() - t, rss)\n"
        "print(p.stdout)\n"
    )
    cmd = [sys.executable, "-m", "hangdoctor", "scan", "--no-cache", "big.py"]
    proc = subprocess.run(
        [sys.executable, "-c", runner, *cmd],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
        env=dict(os.environ, COLUMNS="200", NO_COLOR="1"),
    )
    head, _, out = proc.stdout.partition("\n")
    code, seconds, rss_kb = head.split()
    assert int(code) == 2, proc.stdout + proc.stderr
    assert float(seconds) < 30 and int(rss_kb) < 400 * 1024, head
    assert "big.py is 3" in out and "MB, over the 2 MB limit" in out, out
