"""`hangdoctor scan` on the command line: formats, exit codes, the example app, fixes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from hangdoctor.cli.main import cli
from tests.conftest import expected, expected_lines
from tests.scan.conftest import ROOT

NEWSROOM = ROOT / "examples" / "newsroom"
EXPECT = re.compile(r"(HD\d{3})\b")  # a tag of newsroom_lines.json naming a code


def _run(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`hangdoctor scan ARGS` run in `cwd`: (exit code, stdout, stderr)."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, ["scan", *args], catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def test_example_app() -> None:
    """The newsroom app: HD101 at the `with` line, every /causes route with a static form,
    and nothing in stream_fixed.py."""
    code, out, _ = _run("--no-cache", "--format", "concise", "api", cwd=NEWSROOM)
    assert code == 1
    found = {
        (line.split(":")[0], int(line.split(":")[1]), line.split()[1]) for line in out.splitlines()
    }
    for tag, exp in expected_lines().items():
        m = EXPECT.match(tag)
        if m and m.group(1) not in ("HD501", "HD900", "HD401"):
            assert (exp.file, exp.line, m.group(1)) in found, (tag, exp)
    assert not [f for f in found if f[0].endswith("stream_fixed.py")]
    assert ("api/routes/stream.py", expected("HD101").line, "HD101") in found


def test_exit_codes_and_errors(tmp_path: Path) -> None:
    """0 when clean, 2 for a missing path and for a bad --select, with a remedy."""
    (tmp_path / "clean.py").write_text("x = 1\n")
    assert _run("--no-cache", "clean.py", cwd=tmp_path)[0] == 0
    code, out, err = _run("--no-cache", "--format", "concise", "missing.py", cwd=tmp_path)
    assert (code, out) == (2, "") and err.startswith("error: missing.py does not exist.")
    code, _, err = _run("--select", "HD999", cwd=tmp_path)
    assert code == 2 and "matches no scan code" in err and "remedy:" in err


def test_machine_formats_and_output_file(tmp_path: Path) -> None:
    """json and sarif are valid JSON; -o writes the report to a file."""
    (tmp_path / "app.py").write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    code, out, _ = _run("--no-cache", "--format", "json", "app.py", cwd=tmp_path)
    assert code == 1 and json.loads(out)["findings"][0]["code"] == "HD201"
    code, out, _ = _run("--no-cache", "--format", "sarif", "-o", "out.sarif", ".", cwd=tmp_path)
    assert code == 1 and out == ""
    log = json.loads((tmp_path / "out.sarif").read_text())
    assert log["runs"][0]["results"][0]["ruleId"] == "HD201"
    code, out, _ = _run("--no-cache", "--format", "github", ".", cwd=tmp_path)
    assert out.startswith("::error file=app.py,line=5,col=5,title=HD201::")
    code, out, _ = _run("--no-cache", ".", cwd=tmp_path)
    assert "Found 1 problem in 1 file" in out


def test_default_path_is_the_project(tmp_path: Path) -> None:
    """With no path, the project around the working directory is scanned."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "app.py").write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    code, out, _ = _run("--no-cache", "--format", "concise", cwd=tmp_path / "pkg")
    assert code == 1 and "app.py:5:5: HD201" in out


def test_diff_then_fix(tmp_path: Path) -> None:
    """--diff prints the safe fix and writes nothing; --fix applies it and the rescan is clean."""
    app = tmp_path / "app.py"
    source = "import time\n\n\nasync def f():\n    time.sleep(1)\n"
    app.write_text(source)
    code, out, _err = _run("--no-cache", "--diff", "app.py", cwd=tmp_path)
    assert "+    await asyncio.sleep(1)" in out and app.read_text() == source
    assert "Would fix 1 problem." in out
    code, out, _ = _run("--no-cache", "--fix", "app.py", cwd=tmp_path)
    assert code == 0 and "await asyncio.sleep(1)" in app.read_text()
    assert "Fixed 1 problem." in out and "No problems found" in out


def test_unsafe_fixes_need_the_flag(tmp_path: Path) -> None:
    """A fix that changes where code runs is only counted without --unsafe-fixes."""
    app = tmp_path / "app.py"
    app.write_text("import requests\n\n\nasync def f():\n    requests.get('http://x')\n")
    code, _out, err = _run("--no-cache", "--fix", "--format", "concise", "app.py", cwd=tmp_path)
    assert code == 1 and "--unsafe-fixes" in err
    code, _, _ = _run("--no-cache", "--fix", "--unsafe-fixes", "app.py", cwd=tmp_path)
    assert "asyncio.to_thread" in app.read_text()


def test_pre_commit_hook_definition() -> None:
    """.pre-commit-hooks.yaml defines the hangdoctor-scan hook."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "hangdoctor-scan"]
    assert hook["entry"] == "hangdoctor scan --project"
    assert hook["language"] == "python" and hook["types"] == ["python"]
