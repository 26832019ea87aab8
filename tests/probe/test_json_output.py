"""The probe's JSON document: plain JSON data, schema keys, and nothing secret in it."""

from __future__ import annotations

import json

from tests.probe.test_terminal import make_result

from hangdoctor.report.probe_json import probe_to_json, probe_to_jsonable, redacted


def test_json_redacts_headers_and_body() -> None:
    """Header values and the body never reach JSON; the keys stay."""
    result = make_result(stalled=False)
    data = probe_to_jsonable(result, exit_code=0)
    assert data["config"]["headers"] == [["Authorization", "<redacted>"]]
    assert "s3cret" not in repr(data)
    assert redacted(result).config.headers[0][0] == "Authorization"
    assert data["verdict"] == "pass" and data["diagnosis"] is None


def test_json_document_round_trips() -> None:
    """The document parses back to exactly the data `probe_to_jsonable` returns."""
    result = make_result(stalled=True)
    data = probe_to_jsonable(result, exit_code=1)
    assert json.loads(probe_to_json(result, exit_code=1)) == data
    assert data["exit_code"] == 1 and data["verdict"] == "fail"
    assert data["stalls"][0]["timeouts"] == 4
