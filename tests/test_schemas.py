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
import re
import threading
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
MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


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
    bad["findings"][0]["col"] = bad["findings"][0].pop("column")  # the schema_version 1 name
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
    assert MOMENT.match(data["started_at"]) and data["health"][0]["t_s"] >= 0
    data["summary"]["p95_s"] = 0.1
    assert _invalid("probe", data)
    data["summary"].pop("p95_s")
    data["started_at"] = time.time()  # an epoch number, as schema_version 1 wrote it
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


def test_probe_json_with_the_servers_records_is_valid(tmp_path: Path) -> None:
    """--server-records: a real watchdog's stall record, appended to the file mid-run."""
    records = tmp_path / "records.jsonl"

    async def stall() -> list[StallRecord]:
        async with LoopWatchdog(0.1, log=False) as dog:
            await asyncio.sleep(0.05)
            time.sleep(0.3)  # blocks the loop: the record this test needs
            await asyncio.sleep(0.05)
        return list(dog.records)

    def server_side() -> None:
        time.sleep(0.6)  # into the run
        lines = [r.to_json() for r in asyncio.run(stall())]
        with records.open("a") as f:
            f.write("\n".join([*lines, "not a record", ""]))

    with TinyServer() as server:
        config = quick_config(
            server.url,
            clients=0,
            streams=(),
            duration_s=2.0,
            baseline_s=0.0,
            server_metrics="off",
            server_records=str(records),
        )
        writer = threading.Thread(target=server_side)
        writer.start()
        result = probe(config, capture=False)
        writer.join(10)
    data = json.loads(probe_to_json(result, exit_code=0))
    view = data["server_view"]
    assert view["url"] is None and view["records_file"] == str(records)
    assert view["records"] and view["records"][0]["kind"] == "stall"
    assert 0 < view["records"][0]["t_s"] < 2.0 and view["records_skipped"] == 1
    _valid("probe", data)
    view["records"][0]["t"] = 1.0  # the model's name: JSON says t_s
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
        assert data["schema_version"] == 2 and data["record"] == "stall"
        assert MOMENT.match(data["started_at"]), data["started_at"]
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
        assert data["schema_version"] == 2 and data["record"] == "stuck"
        assert MOMENT.match(data["seen_at"]), data["seen_at"]
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


# -- one name for one idea (schema_version 2) --------------------------------------------

# schema_version 1 names of ideas that have one name in every output now
RETIRED = {
    "col": "`column`, 1-based",
    "duration": "`blocked_for_s` (every duration ends in `_s`)",
    "detected_after": "`detected_after_s`",
    "thread": "`thread_name`",
    "seconds": "`elapsed_s`",
    "t": "`t_s`",
}
SECONDS = re.compile(r"\b(seconds?|how long|since the probe started)\b|^(when|start)\b", re.I)


def _properties(node: Any, path: str = "") -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, key, property schema) of a schema: top level, $defs, nested objects."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            found += [(f"{path}/{key}", key, prop) for key, prop in props.items()]
        for key, value in node.items():
            if key != "examples":  # data, not schema
                found += _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for value in node:
            found += _properties(value, path)
    return found


def _types(prop: dict[str, Any]) -> set[str]:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if "anyOf" in prop:
        return set().union(*(_types(p) for p in prop["anyOf"]))
    if "const" in prop:
        return {names[type(prop["const"])]}
    if "enum" in prop:
        return {names[type(v)] for v in prop["enum"]}
    kind = prop.get("type", ())
    return {kind} if isinstance(kind, str) else set(kind)


def _naming_problems(name: str, schema: dict[str, Any]) -> list[str]:
    """Where `schema` names an idea otherwise than every other output does."""
    problems: list[str] = []
    if "kind" in schema["properties"]:
        problems.append(f"{name}: a document says what it is under `record`, not `kind`")
    for path, key, prop in _properties(schema):
        where = f"{name}{path}"
        types = _types(prop) - {"null"}
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        if key in RETIRED:
            problems.append(f"{where}: `{key}` is {RETIRED[key]} now")
        if key.endswith("_at") and not (
            types == {"string"} and prop.get("format") == "date-time" and "pattern" in prop
        ):
            problems.append(f"{where}: `*_at` is an ISO 8601 moment (string, date-time)")
        if key.endswith("_s") and not (
            types <= {"number", "integer"} or _types(items) == {"number"}
        ):
            problems.append(f"{where}: `*_s` holds seconds, a number")
        seconds = SECONDS.search(str(prop.get("description", "")))
        if types == {"number"} and not key.endswith("_s") and seconds:
            problems.append(f"{where}: seconds without `_s`")
        if key == "column" and "1-based" not in prop["description"]:
            problems.append(f"{where}: `column` is 1-based and says so")
        if key == "thread_name" and types != {"string"}:
            problems.append(f"{where}: `thread_name` is a string")
        if key == "tid" and types != {"integer"}:
            problems.append(f"{where}: `tid` is the native thread id, an integer")
        if key == "record" and path.count("/") > 1:
            problems.append(f"{where}: `record` only says what a whole document or line is")
        if key == "schema_version" and prop.get("const") != 2:
            problems.append(f"{where}: schema_version is 2")
    return problems


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_one_name_for_one_idea_in_every_schema(name: str) -> None:
    """Positions, durations, moments, threads and the discriminator are named alike everywhere."""
    assert _naming_problems(name, load_schema(name)) == []


def test_the_naming_check_catches_every_old_name() -> None:
    """Each schema_version 1 spelling, put back, is reported: the check above can fail."""
    stall = load_schema("stall")

    def problems_with(**props: dict[str, Any]) -> list[str]:
        schema = copy.deepcopy(stall)
        schema["properties"].update(props)
        return _naming_problems("stall", schema)

    for old in ("col", "duration", "detected_after", "thread", "seconds", "t"):
        assert problems_with(**{old: {"type": "integer", "description": "x"}}), old
    assert problems_with(started_at={"type": "number", "description": "Wall clock."})
    assert problems_with(created_at={"type": "string", "description": "`file:line`."})
    assert problems_with(lag={"type": "number", "description": "How long it lagged."})
    assert problems_with(kind={"const": "stall", "description": "x"})
    assert problems_with(schema_version={"const": 1, "description": "x"})
    assert problems_with(thread_name={"type": "integer", "description": "x"})


def test_the_same_idea_has_the_same_name_across_outputs() -> None:
    """How long the loop was blocked, the loop thread and where a wait was made: one key each."""
    stall, diagnose = load_schema("stall"), load_schema("diagnose")
    finding = diagnose["$defs"]["finding"]["properties"]
    assert {"blocked_for_s", "thread_name", "tid", "line"} <= set(stall["properties"])
    assert {"blocked_for_s", "thread_name", "tid", "line", "column"} <= set(finding)
    stuck = load_schema("stuck")["$defs"]
    assert set(stuck["stuck_wait"]["properties"]) <= set(
        diagnose["$defs"]["waits_on"]["properties"]
    )
    assert "waits_in" in stuck["stuck_holder"]["properties"]
    for name in ("stall", "stuck", "probe"):
        assert "record" in load_schema(name)["required"], name


# -- files written with schema_version 1 still read -----------------------------------------

V1_STALL = {
    "record": "stall", "code": "HD201", "name": "time-sleep-in-async",
    "message": "`time.sleep()` in handler blocks the loop", "file": "/srv/app.py", "line": 12,
    "function": "handler", "duration": 1.2034, "started_at": 1796546102.1234,
    "detected_after": 0.2511, "pid": 7, "thread": "MainThread", "tid": 7, "state": "blocked",
    "samples": 3, "source": "time.sleep(1.2)",
    "stack": [{"function": "handler", "file": "/srv/app.py", "line": 12, "short_file": "app.py",
               "module": None, "locals": []}],
    "waits_for": None,
    "request": {"method": "GET", "path": "/slow", "route": "/slow", "request_id": None,
                "streaming": False, "disconnected": False, "disconnected_s": None, "age_s": 1.3},
    "in_flight": 1, "notes": [], "schema_version": 1,
}  # fmt: skip
V1_STUCK = {
    "record": "stuck", "code": "HD601", "name": "await-deadlock",
    "message": "Task `a` waits for lock_b", "file": "app.py", "line": 12, "function": "transfer",
    "pid": 7, "thread": "MainThread", "tid": 7, "seen_at": 1796546102.5,
    "source": "async with lock_b:",
    "waits_on": {"kind": "lock", "name": "lock_b", "type": "asyncio.Lock",
                 "created_at": "app.py:3", "capacity": None, "in_use": None, "waiters": None,
                 "detail": None},
    "holders": [{"task": "b", "file": "app.py", "line": 20, "function": "close_day",
                 "since_s": 2.0, "waits_on": {"kind": "lock", "name": "lock_a",
                 "type": "asyncio.Lock", "created_at": "app.py:2", "capacity": None,
                 "in_use": None, "waiters": None, "detail": None},
                 "waits_at": "app.py:22", "alive": True, "exception": None}],
    "task": "a", "task_id": 1, "waiting_s": 3.5, "request": None, "cycle": ["a", "b"],
    "tasks_waiting": None, "stack": [], "notes": [], "schema_version": 1,
}  # fmt: skip


def test_a_version_1_stall_line_still_reads_and_rewrites_as_version_2() -> None:
    """A JSON Lines log a service wrote before version 2: epoch `started_at`, `duration`."""
    record = StallRecord.from_dict(copy.deepcopy(V1_STALL))
    assert (record.duration, record.detected_after, record.thread) == (1.2034, 0.2511, "MainThread")
    assert record.started_at == 1796546102.123  # kept to the millisecond JSON writes
    data = json.loads(record.to_json())
    _valid("stall", data)
    assert data["started_at"] == "2026-12-06T08:35:02.123Z" and data["blocked_for_s"] == 1.2034
    assert StallRecord.from_dict(data) == record


def test_a_version_1_stuck_line_still_reads_and_rewrites_as_version_2() -> None:
    record = StuckRecord.from_dict(copy.deepcopy(V1_STUCK))
    assert record.seen_at == 1796546102.5 and record.thread == "MainThread"
    assert record.waits_on is not None and record.waits_on.created_at == "app.py:3"
    assert record.holders[0].waits_at == "app.py:22"
    data = json.loads(record.to_json())
    _valid("stuck", data)
    assert data["seen_at"] == "2026-12-06T08:35:02.500Z" and data["thread_name"] == "MainThread"
    assert data["waits_on"]["created_in"] == "app.py:3"
    assert data["holders"][0]["waits_in"] == "app.py:22"
    assert data["holders"][0]["waits_on"]["created_in"] == "app.py:2"
    assert StuckRecord.from_dict(data) == record


def test_a_record_of_a_newer_version_is_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError, match=r"^This stall record has schema_version 3; .* 1 and 2\.$"):
        StallRecord.from_dict({**V1_STALL, "schema_version": 3})


def test_a_version_1_diagnosis_still_reads() -> None:
    """A report saved by `diagnose --format json` before version 2: `thread`, 0-based `col`."""
    from hangdoctor.report.json_report import diagnosis_from_json, diagnosis_to_jsonable

    good = _analyze(DUMP_DIR / "capture-3.12.json")
    old = copy.deepcopy(good)
    old["schema_version"] = 1
    for loop in old["loops"]:
        loop["thread"] = loop.pop("thread_name")
    for finding in old["findings"]:
        finding["thread"] = finding.pop("thread_name")
        finding["col"] = 4  # 0-based in version 1
        del finding["column"]
    diagnosis = diagnosis_from_json(json.dumps(old))
    assert diagnosis.loops[0].thread == good["loops"][0]["thread_name"]
    assert diagnosis.findings[0].col == 4
    again = diagnosis_to_jsonable(diagnosis)
    _valid("diagnose", again)
    assert again["findings"][0]["column"] == 5
