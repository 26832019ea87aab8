"""The model is frozen and round-trips through plain JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hangdoctor.model import (
    Diagnosis,
    Finding,
    Frame,
    Local,
    LoopKind,
    LoopReport,
    LoopState,
    Snapshot,
    Thread,
    Verdict,
    WaitTarget,
    finding_from_dict,
    snapshot_from_dict,
    to_dict,
)

_FRAME = Frame(
    function="news_stream.<locals>.gen",
    file="/srv/app/api/routes/stream.py",
    line=34,
    short_file="api/routes/stream.py",
    locals=(Local(name="ex", repr="<ThreadPoolExecutor at 0x7f>", addr=139, is_arg=False),),
)
_SNAPSHOT = Snapshot(
    pid=3731,
    taken_at=1764040000.25,
    threads=(Thread(tid=3731, name="MainThread", frames=(_FRAME,), ident=1, active=False),),
    python_version="3.12",
    command="uvicorn api.main:app",
    root="/proc/3731/root",
    duration_s=0.006,
    cwd="/srv/app",
)
_FINDING = Finding(
    code="HD101",
    message="Leaving the `with` executor block runs shutdown(wait=True) on the loop.",
    file=_FRAME.file,
    line=34,
    function=_FRAME.function,
    pid=3731,
    thread="MainThread",
    tid=3731,
    blocked_for_s=0.8,
    state=LoopState.BLOCKED,
    source="with ThreadPoolExecutor(max_workers=2) as ex:",
    waits_for=WaitTarget(description="worker", thread_name="ThreadPoolExecutor-0_0", tid=3736),
    stack=(_FRAME,),
    user_frame_index=0,
)


def _through_json(data: dict[str, object]) -> dict[str, object]:
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_snapshot_round_trip() -> None:
    """A Snapshot survives to_dict -> JSON text -> from_dict unchanged."""
    assert snapshot_from_dict(_through_json(to_dict(_SNAPSHOT))) == _SNAPSHOT


def test_finding_round_trip() -> None:
    """A Finding, with its stack, locals and wait target, survives JSON unchanged."""
    assert finding_from_dict(_through_json(to_dict(_FINDING))) == _FINDING


def test_diagnosis_round_trip() -> None:
    """A Diagnosis survives JSON unchanged, enums included."""
    diagnosis = Diagnosis(
        verdict=Verdict.BLOCKED,
        loops=(LoopReport(3731, 3731, "MainThread", LoopKind.ASYNCIO, LoopState.BLOCKED, 0.8),),
        findings=(_FINDING,),
        pids=(3731,),
        samples=3,
        sampled_for_s=0.8,
        notes=("a note",),
    )
    assert Diagnosis.from_dict(_through_json(diagnosis.to_dict())) == diagnosis


def test_model_is_frozen() -> None:
    """Model objects cannot be changed after they are made."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        _FRAME.line = 1  # type: ignore[misc]


def test_without_locals_drops_only_locals() -> None:
    """without_locals() removes frame locals and keeps everything else."""
    diagnosis = Diagnosis(Verdict.BLOCKED, (), (_FINDING,))
    bare = diagnosis.without_locals()
    assert bare.findings[0].stack[0].locals == ()
    assert dataclasses.replace(bare.findings[0].stack[0], locals=_FRAME.locals) == _FRAME
    assert dataclasses.replace(bare.findings[0], stack=_FINDING.stack) == _FINDING


def test_verdict_severity_orders_states() -> None:
    """blocked is worse than starved, which is worse than busy, which is worse than healthy."""
    order = [Verdict.HEALTHY, Verdict.BUSY, Verdict.STARVED, Verdict.BLOCKED]
    assert sorted(order, key=lambda v: v.severity) == order
