"""The JSON contract: every JSON output, made by the real code, is valid against its shipped schema.

Each output comes from the code path a user runs: `analyze --format json` on the
saved real captures of tests/data/dumps, `scan --format json` on tests/data/scan,
a probe run against a tiny real server on 127.0.0.1, and the stall and stuck
records of the real watchdog on real loops.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from hangdoctor.analysis import analyze
from hangdoctor.capture.dumps import load_dump
from hangdoctor.cli.main import cli
from hangdoctor.probe.engine import probe
from hangdoctor.report.probe_json import probe_to_json
from hangdoctor.runtime import LoopWatchdog, StallRecord, StuckRecord
from hangdoctor.schemas import SCHEMAS, check_docs, default_docs_path, load_schema, render_markdown
from tests.probe._servers import TinyServer, quick_config
from tests.probe.test_terminal import make_result

ROOT = Path(__file__).resolve().parents[1]
DUMP_DIR = ROOT / "tests" / "data" / "dumps"
DUMPS = sorted(p for p in DUMP_DIR.iterdir() if p.suffix in {".json", ".jsonl", ".txt"})
SCAN_DATA = ROOT / "tests" / "data" / "scan"


def _valid(name: str, document: Any) -> None:
    """Fail with every error (path and message), not only the first."""
    errors = sorted(
        Draft202012Validator(load_schema(name)).iter_errors(document), key=lambda e: list(e.path)
    )
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:10]]


def _in_order(name: str, document: dict[str, Any]) -> None:
    """The top-level keys come in the schema's order (the docs list them so); an open top
    level (probe) may have keys the schema does not know yet between them."""
    keys = list(load_schema(name)["properties"])
    assert [k for k in document if k in keys] == keys


def _invalid(name: str, document: Any) -> bool:
    return not Draft202012Validator(load_schema(name)).is_valid(document)


# -- the schemas themselves ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "schema_version" in schema["required"]


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_the_examples_of_each_schema_are_valid(name: str) -> None:
    """The examples docs/json-schema.md shows are documents the schema accepts."""
    for example in load_schema(name).get("examples", ()):
        _valid(name, example)


def test_shared_objects_are_the_same_in_every_schema() -> None:
    """A frame, a request, ... is copied into each file's $defs: the copies must not drift."""
    seen: dict[str, tuple[str, Any]] = {}
    for name in SCHEMAS:
        for key, node in load_schema(name)["$defs"].items():
            if key in seen:
                assert node == seen[key][1], f"$defs/{key} differs in {name} and {seen[key][0]}"
            else:
                seen[key] = (name, node)
    assert {"frame", "request", "local"} <= set(seen)
    # the probe's capture is a diagnose document
    diagnose, embedded = load_schema("diagnose"), load_schema("probe")["$defs"]["diagnosis"]
    for key in ("type", "properties", "required", "additionalProperties"):
        assert embedded[key] == diagnose[key], key


def test_committed_docs_are_generated_from_the_schemas() -> None:
    """docs/json-schema.md is what `python -m hangdoctor.schemas` writes."""
    assert check_docs(default_docs_path()), "run `python -m hangdoctor.schemas`"
    text = render_markdown()
    for name in SCHEMAS:  # every key of every output is explained
        for key, prop in load_schema(name)["properties"].items():
            assert f"| `{key}` |" in text and prop["description"] in text.replace("\\|", "|")


def test_stale_docs_are_caught(tmp_path: Path) -> None:
    """--check fails on a file that differs from the schemas, and writing fixes it."""
    from hangdoctor.schemas import main

    stale = tmp_path / "json-schema.md"
    stale.write_text(render_markdown().replace("Process id.", "The pid."), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0 and main(["--check", str(stale)]) == 0


# -- diagnose / analyze --------------------------------------------------------------------


def _analyze(path: Path, *flags: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["analyze", str(path), "--format", "json", *flags])
    assert result.exit_code in (0, 1), result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("dump", DUMPS, ids=lambda p: p.name)
def test_analyze_json_of_every_saved_capture_is_valid(dump: Path) -> None:
    data = _analyze(dump)
    _valid("diagnose", data)
    _in_order("diagnose", data)


def test_analyze_json_with_locals_is_valid() -> None:
    data = _analyze(DUMP_DIR / "pyspy-json-locals-3.12.json", "--locals")
    assert any(f["locals"] for x in data["findings"] for f in x["stack"])  # the branch is covered
    _valid("diagnose", data)


def test_the_diagnose_schema_rejects_what_the_contract_forbids() -> None:
    """Unknown keys, a missing key, a wrong state or a renamed key fail: the check can fail."""
    good = _analyze(DUMP_DIR / "capture-3.12.json")
    assert good["findings"]
    _valid("diagnose", good)
    bad = copy.deepcopy(good)
    bad["findings"][0]["column"] = bad["findings"][0].pop("col")
    assert _invalid("diagnose", bad)
    bad = copy.deepcopy(good)
    bad["loops"][0]["state"] = "sleepy"
    assert _invalid("diagnose", bad)
    bad = copy.deepcopy(good)
    del bad["schema_version"]
    assert _invalid("diagnose", bad)
    bad = copy.deepcopy(good)
    bad["findings"][0]["stack"][0]["line"] = "12"
    assert _invalid("diagnose", bad)


# -- scan ------------------------------------------------------------------------------------


def test_scan_json_of_the_eval_files_is_valid(tmp_path: Path) -> None:
    """Findings, startup code (lifecycle) and a file that cannot be parsed (problems)."""
    broken = tmp_path / "broken.py"
    broken.write_text("async def f(:\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["scan", str(SCAN_DATA), str(broken), "--format", "json"])
    data = json.loads(result.stdout)
    assert data["findings"] and data["lifecycle"] and data["problems"], result.output
    assert any(f["steps"] for f in data["findings"])
    _valid("scan", data)
    _in_order("scan", data)
    data["findings"][0]["col"] = data["findings"][0].pop("column")
    assert _invalid("scan", data)


# -- probe -----------------------------------------------------------------------------------


def test_probe_json_of_a_real_run_is_valid() -> None:
    """A real probe of a tiny server on 127.0.0.1: streams, health, a --request, a baseline."""
    with TinyServer() as server:
        config = quick_config(
            server.url,
            streams=("/sse",),
            clients=2,
            duration_s=1.0,
            baseline_s=0.3,
            requests=("GET /json",),
            headers=(("X-Token", "abc"),),
        )
        result = probe(config, capture=False)
    data = json.loads(probe_to_json(result, exit_code=0))
    assert data["health"] and data["streams"] and data["requests"] and data["baseline"]
    assert data["request_stats"] and data["config"]["headers"] == [["X-Token", "<redacted>"]]
    _valid("probe", data)
    _in_order("probe", data)
    data["summary"]["p95_s"] = 0.1
    assert _invalid("probe", data)


def test_probe_json_with_a_diagnosis_is_valid() -> None:
    """The capture of a stall sits in the probe document in the diagnose schema."""
    diagnosis = analyze(load_dump(DUMP_DIR / "capture-3.12.json"))
    stalled = replace(
        make_result(stalled=True),
        diagnosis=diagnosis,
        diagnosis_t=0.6,
        diagnosis_kind="stall",
        pid=diagnosis.pids[0],
    )
    data = json.loads(probe_to_json(stalled, exit_code=1))
    assert data["diagnosis"]["findings"] and data["stalls"]
    _valid("probe", data)
    data["diagnosis"]["verdict"] = "fine"
    assert _invalid("probe", data)


# -- watchdog records ---------------------------------------------------------------------


def test_stall_record_of_the_real_watchdog_is_valid() -> None:
    async def main() -> list[StallRecord]:
        async with LoopWatchdog(0.1, log=False) as dog:
            await asyncio.sleep(0.05)
            time.sleep(0.4)  # blocks the loop: the stall this test is about
            await asyncio.sleep(0.05)
        return list(dog.records)

    records = asyncio.run(main())
    assert records
    for record in records:
        data = json.loads(record.to_json())
        assert data["schema_version"] == 1 and data["record"] == "stall"
        _valid("stall", data)
        _in_order("stall", data)
        assert StallRecord.from_dict(data) == record  # the versioned line still reads back
    assert _invalid("stuck", json.loads(records[0].to_json()))


def test_stuck_record_of_the_real_watchdog_is_valid() -> None:
    """An AB/BA deadlock of two tasks on a loop that keeps answering: HD601."""

    async def main() -> list[StuckRecord]:
        first, second = asyncio.Lock(), asyncio.Lock()

        async def one() -> None:
            async with first:
                await asyncio.sleep(0.05)
                async with second:
                    pass

        async def two() -> None:
            async with second:
                await asyncio.sleep(0.05)
                async with first:
                    pass

        dog = LoopWatchdog(0.25, log=False, stuck_after=0.5)
        dog.start()
        tasks = [asyncio.create_task(one(), name="one"), asyncio.create_task(two(), name="two")]
        try:
            deadline = time.monotonic() + 6.0
            while not dog.stuck_records and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await dog.aclose()
        return list(dog.stuck_records)

    records = asyncio.run(main())
    assert records and records[0].code == "HD601" and records[0].holders
    for record in records:
        data = json.loads(record.to_json())
        assert data["schema_version"] == 1 and data["record"] == "stuck"
        _valid("stuck", data)
        _in_order("stuck", data)
        assert StuckRecord.from_dict(data) == record
    assert _invalid("stall", json.loads(records[0].to_json()))


# -- hangdoctor schema -----------------------------------------------------------------------


def test_schema_lists_the_names_one_line_each() -> None:
    for args in ([], ["--list"]):
        result = CliRunner().invoke(cli, ["schema", *args])
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        assert [line.split()[0] for line in lines] == list(SCHEMAS)
        assert all(len(line.split()) > 2 for line in lines)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_prints_the_shipped_schema(name: str) -> None:
    result = CliRunner().invoke(cli, ["schema", name])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == load_schema(name)


def test_schema_with_a_wrong_name_says_so_and_exits_2() -> None:
    result = CliRunner().invoke(cli, ["schema", "diagnosis"])
    assert result.exit_code == 2
    assert "There is no schema named 'diagnosis'." in result.stderr
    assert all(name in result.stderr for name in SCHEMAS)
    assert "Traceback" not in result.output and result.stdout == ""


def test_schema_help_names_every_schema() -> None:
    result = CliRunner().invoke(cli, ["schema", "--help"])
    assert result.exit_code == 0
    assert "JSON Schema" in result.stdout and all(name in result.stdout for name in SCHEMAS)
    assert "schema" in CliRunner().invoke(cli, ["--help"]).stdout
