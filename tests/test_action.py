"""CI integrations: the composite GitHub Action (action.yml) and `--format github` annotations.

The action's `run:` steps are executed here with bash, the way the runner runs them
(`bash --noprofile --norc -eo pipefail`), after substituting the `${{ ... }}` expressions
with test values. The install step is the exception: `pip install` of the action's
checkout builds a wheel with hatchling, which pip fetches from PyPI, and tests have no
network; the scan step then runs with this venv's `python` on PATH, where hangdoctor is
installed from this very checkout (the action path). Building and installing the wheel
for real is tests/test_wheel.py's job; here the install step is checked as text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hangdoctor.model import Finding
from hangdoctor.report.scan_github import render_scan_github
from tests.scan.conftest import run_scan

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
DEADLINE = 120  # seconds for one step


def _action() -> dict[str, Any]:
    data = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _steps() -> list[dict[str, Any]]:
    return _action()["runs"]["steps"]  # type: ignore[no-any-return]


def _referenced_inputs(value: object) -> set[str]:
    """Every `inputs.NAME` in an expression or an `if:` condition."""
    return set(re.findall(r"\binputs\.([A-Za-z0-9_-]+)", json.dumps(value)))


def test_action_structure() -> None:
    """Composite; every run step has a shell; inputs used exist; outputs point at a real step."""
    action = _action()
    assert action["name"] and action["description"]
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert set(inputs) == {"paths", "args", "python-version", "sarif-file", "upload"}
    for spec in inputs.values():
        assert spec["description"] and "default" in spec and isinstance(spec["default"], str)
    steps = _steps()
    ids = {s["id"] for s in steps if "id" in s}
    for step in steps:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step.get("shell") == "bash", f"a composite run step needs `shell:`: {step}"
        else:
            assert "shell" not in step and "@" in step["uses"]
    assert _referenced_inputs(steps) == set(inputs)  # nothing undeclared, nothing unused
    for out in action["outputs"].values():
        (ref,) = re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.", out["value"])
        assert ref in ids


def test_action_installs_from_its_own_checkout_and_uploads() -> None:
    """pip installs `github.action_path` (not a PyPI name); upload-sarif gets the same file."""
    steps = _steps()
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert '"${{ github.action_path }}"' in install["run"]
    # hangdoctor depends on hangdoctor-runtime, on no index: installed from the checkout too
    assert '"${{ github.action_path }}/packaging/hangdoctor-runtime"' in install["run"]
    assert not re.search(r"pip install[^\n]*\shangdoctor\b", install["run"])
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["if"] == "inputs.python-version != ''"
    assert steps.index(setup) < steps.index(install)
    upload = steps[-1]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["if"] == "inputs.upload == 'true'"
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif-file }}"


def _substitute(text: str, inputs: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr == "github.action_path":
            return str(ROOT)
        name = expr.removeprefix("inputs.")
        assert name != expr and name in inputs, f"unexpected expression {expr!r}"
        return inputs[name]

    return EXPR.sub(value, text)


def _run_steps(
    project: Path, given: dict[str, str], *, write_python: bool = True
) -> tuple[int, str, dict[str, str]]:
    """Run the action's run steps (but the install) in `project`: (status, output, outputs)."""
    inputs = {name: spec["default"] for name, spec in _action()["inputs"].items()} | given
    bindir = project.parent / "bin"
    bindir.mkdir(exist_ok=True)
    # this venv's Python, where hangdoctor is installed from ROOT (the action path); a wrapper,
    # not a symlink: a symlink elsewhere would not find the venv's pyvenv.cfg
    python = bindir / "python"
    if write_python:
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
    outputs_file = project.parent / "github_output"
    outputs_file.write_text("")
    status, log = 0, ""
    for step in _steps():
        if "run" not in step or "pip install" in step["run"]:
            continue
        env = {
            "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(project.parent),
            "GITHUB_OUTPUT": str(outputs_file),
        }
        env |= {k: _substitute(str(v), inputs) for k, v in step.get("env", {}).items()}
        done = subprocess.run(
            [*BASH, "-c", _substitute(step["run"], inputs)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        status, log = done.returncode, log + done.stdout + done.stderr
        if status:
            break
    outputs = dict(
        line.split("=", 1) for line in outputs_file.read_text().splitlines() if "=" in line
    )
    return status, log, outputs


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    # the project root, as a checkout's .git or pyproject.toml makes it: SARIF URIs are below it
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n', encoding="utf-8")
    (root / "app" / "routes.py").write_text(
        "import time\n\n\nasync def route():\n    time.sleep(1)\n", encoding="utf-8"
    )
    (root / "jobs.py").write_text(
        "import requests\n\n\nasync def job():\n    return requests.get('http://127.0.0.1:9')\n",
        encoding="utf-8",
    )
    (root / "other.py").write_text("import time\n\n\nasync def g():\n    time.sleep(2)\n")
    return root


def test_action_scan_step_writes_sarif(project: Path) -> None:
    """Findings: status 0, a valid SARIF log with the results of the given paths only."""
    given = {"paths": "app jobs.py", "args": "--no-cache --jobs 1", "sarif-file": "hd.sarif"}
    status, log, outputs = _run_steps(project, given)
    assert status == 0, log
    assert outputs == {"exit-code": "1", "sarif-file": "hd.sarif"}
    sarif = json.loads((project / "hd.sarif").read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"app/routes.py", "jobs.py"}  # two paths split on the space; other.py not given
    assert {r["ruleId"] for r in results} == {"HD201", "HD202"}


def test_action_fails_on_a_usage_error_and_never_runs_inputs_as_code(project: Path) -> None:
    """Exit 2 fails the step with an annotation; an input with shell syntax stays a word."""
    given = {"paths": "missing.py", "args": "$(touch pwned) `touch pwned2`"}
    status, log, outputs = _run_steps(project, given)
    assert status == 2
    assert "::error title=hangdoctor::hangdoctor scan exited with status 2" in log
    assert outputs["exit-code"] == "2"
    assert not (project / "pwned").exists() and not (project / "pwned2").exists()


def test_action_fails_when_python_fails_before_hangdoctor_runs(project: Path) -> None:
    """Exit 1 from Python itself (no hangdoctor) is not "findings": no log, the step fails."""
    (project / "hd.sarif").write_text("{}")  # an old log must not pass for this run's
    bindir = project.parent / "bin"
    bindir.mkdir()
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    (bindir / "python").chmod(0o755)
    status, log, outputs = _run_steps(project, {"sarif-file": "hd.sarif"}, write_python=False)
    assert "No module named hangdoctor" in log
    assert status == 1 and outputs["exit-code"] == "1" and not (project / "hd.sarif").exists()
    assert "wrote no SARIF log" in log


# ---- `--format github`: GitHub's workflow commands -------------------------------------
#
# `::error file={name},line={line},endLine={endLine},title={title}::{message}` (GitHub's
# "Workflow commands for GitHub Actions"). In the message, `%`, CR and LF are written
# `%25`, `%0D`, `%0A`; in property values `:` and `,` also, as `%3A` and `%2C`. The parser
# below reads a line the way the runner does: split at the first `::` after the command,
# properties at `,`, each at its first `=`, then undo the escapes.

COMMAND = re.compile(r"^::(?P<cmd>[a-z]+)(?: (?P<props>[^:]*))?::(?P<msg>.*)$")


def _unescape(text: str, *, prop: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else [])
    for code, char in pairs:
        text = text.replace(code, char)
    return text.replace("%25", "%")


def _parse(line: str) -> tuple[str, dict[str, str], str]:
    m = COMMAND.match(line)
    assert m, f"not a workflow command: {line!r}"
    props: dict[str, str] = {}
    for part in (m.group("props") or "").split(","):
        key, sep, value = part.partition("=")
        assert sep and key in {"file", "line", "endLine", "col", "endColumn", "title"}, part
        props[key] = _unescape(value, prop=True)
    return m.group("cmd"), props, _unescape(m.group("msg"), prop=False)


def test_github_annotations_round_trip_awkward_names(tmp_path: Path) -> None:
    """A file name with a comma and a colon, a message with a newline and a percent sign."""
    name = "we,ird:mod.py"
    (tmp_path / name).write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    (tmp_path / "bro,ken.py").write_text("def (:\n")
    result = run_scan([tmp_path], tmp_path)
    (finding,) = result.findings
    odd: Finding = replace(finding, message="100% blocked\r\nfor good: a, b")
    lines = render_scan_github(replace(result, findings=(odd,))).splitlines()
    assert len(lines) == 2 and all("\r" not in line for line in lines)
    kind, props, message = _parse(lines[0])
    assert kind == "error" and props["title"] == "HD201"
    assert props["file"].endswith(name) and props["line"] == "5" and props["col"] == "5"
    assert message == "100% blocked\r\nfor good: a, b"
    assert "we%2Cird%3Amod.py" in lines[0] and "100%25 blocked%0D%0Afor good: a, b" in lines[0]
    kind, props, message = _parse(lines[1])
    assert kind == "error" and props["file"].endswith("bro,ken.py") and props["line"] == "1"
    assert props["title"] == "hangdoctor" and "syntax error" in message
