"""A stuck diagnosis as people read it: the terminal, the HTML report and the JSON schema doc."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from rich.console import Console

from hangdoctor.model import Diagnosis, Finding, LoopKind, LoopReport, LoopState, Verdict
from hangdoctor.report import html
from hangdoctor.report.json_report import diagnosis_to_json
from hangdoctor.report.terminal import render_terminal
from tests.analysis.test_tasks import _ab_ba, _dead_reader, _judge, _run, _semaphore
from tests.report.test_json_report import _documented_tables, _keys


@pytest.fixture(scope="module")
def stuck() -> Diagnosis:
    findings: list[Finding] = []
    for scenario in (_ab_ba, _semaphore, _dead_reader):
        findings.extend(_judge(_run(scenario)))
    loop = LoopReport(
        pid=1, tid=1, thread="MainThread", kind=LoopKind.ASYNCIO, state=LoopState.STUCK
    )
    findings = [replace(f, pid=1, tid=1, thread="MainThread") for f in findings]
    return Diagnosis(
        verdict=Verdict.STUCK, loops=(loop,), findings=tuple(findings), pids=(1,), samples=2
    )


def _text(diagnosis: Diagnosis, width: int = 120) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(render_terminal(diagnosis, width=width))
    return out.getvalue()


def test_terminal_names_the_cycle_the_holders_and_their_ages(stuck: Diagnosis) -> None:
    text = _text(stuck, width=300)  # one holder a line
    assert " STUCK " in text and "requests wait on one another" in text
    assert "1 event loop: 1 stuck" in text
    deadlock = text[text.index("HD601 await-deadlock") : text.index("HD604")]
    assert "cycle" in deadlock
    assert re.search(
        r"`credit` took it at .*test_tasks\.py:\d+ in (_ab_ba.<locals>.)?credit", deadlock
    )
    assert "now waits on asyncio.Lock `lock_a`" in deadlock
    assert "Await chain of task" in deadlock
    limiter = text[text.index("HD604 limiter-exhausted") :]
    assert "2 of 2 in use" in limiter
    assert re.search(r"\[0\.\d s\]", limiter)  # ages as a goroutine dump shows them


def test_the_same_cause_twice_is_explained_once(stuck: Diagnosis) -> None:
    text = _text(stuck)
    assert text.count("HD603 lost-wakeup") == 2
    assert text.count("Make whoever resolves a wait answer for it") == 1
    assert "Why and how to fix it: above" in text


def test_html_finding_shows_the_task_what_it_waits_on_and_the_holders(stuck: Diagnosis) -> None:
    deadlock = next(f for f in stuck.findings if f.code == "HD601")
    page = html._finding(deadlock, stuck)
    assert 'class="code-badge stuck"' in page
    assert "Await chain of task <code>" in page
    assert '<ul class="holders">' in page and "now waits on" in page
    assert "these tasks wait on each other for ever" in page


def test_json_schema_doc_lists_the_task_objects(stuck: Diagnosis) -> None:
    data = json.loads(diagnosis_to_json(stuck))
    finding = next(f for f in data["findings"] if f["code"] == "HD601")
    doc = _documented_tables()
    assert doc["Finding object"] == _keys(finding)
    assert doc["Waits-on object (`waits_on`)"] == _keys(finding["waits_on"])
    assert doc["Holder object"] == _keys(finding["holders"][0])
    assert data["verdict"] == "stuck"
