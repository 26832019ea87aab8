"""Project-level promises: the README's commands, CI running them verbatim, lint and types."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", section, re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands() -> None:
    """The README's Quickstart holds two commands: the demo, and the test suite."""
    commands = _quickstart()
    assert len(commands) == 2, commands
    assert commands[0].endswith("hangdoctor demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run contains the README's test command exactly."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _quickstart()[1] in [line.strip() for line in ci]


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "src", "tests", "bench", "packaging"],
        ["ruff", "format", "--check", "src", "tests", "bench", "packaging"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_lint_and_types(argv: list[str]) -> None:
    """ruff and mypy --strict are clean on the source tree."""
    tool = BIN / argv[0]
    proc = subprocess.run(
        [str(tool), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hangdoctor_passes_its_own_scan() -> None:
    """hangdoctor's own async code (the probe, the runtime, the plugin) passes `scan`: each
    call it reports there is fixed or carries a suppression that says why it is fine."""
    proc = subprocess.run(
        [str(BIN / "hangdoctor"), "scan", "src/hangdoctor", "--no-cache", "--format", "concise"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "", proc.stdout
