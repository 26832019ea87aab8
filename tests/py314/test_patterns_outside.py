"""The hang patterns read from outside a 3.14 server: `diagnose --pid`, no runtime inside it.

The same app and requests as tests/runtime/test_patterns.py (watch and the middleware,
which see the objects themselves); from outside, CPython 3.14's remote reader gives
the await chains, and the analysis works out from the frames and the source what each
waits on and who holds it. Each pattern must get its code at the route's line.
"""

from __future__ import annotations

import pytest
from tests.conftest import diagnose_json
from tests.py314.conftest import Start314
from tests.runtime.apps.patterns_app import line_of
from tests.runtime.test_patterns import PATTERNS, _provoke

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", list(PATTERNS))
def test_diagnose_names_the_pattern_from_outside(start314: Start314, name: str) -> None:
    """GIVEN the pattern's requests hanging in a 3.14 server without hangdoctor inside
    WHEN `diagnose --pid PID --stuck-after 2` from the host THEN stuck, the pattern's code
    at its line, what it waits on by kind (and for the locks, where each holder took its)."""
    pattern = PATTERNS[name]

    def argv(python: str, port: int) -> list[str]:
        return [
            python, "-m", "uvicorn", "patterns_app:app", "--app-dir", "tests/runtime/apps",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ]  # fmt: skip

    target = start314(argv)
    sockets = _provoke(target.server, pattern)
    try:
        status, out = diagnose_json(target.pid, "--stuck-after", "2")
    finally:
        for sock in sockets:
            sock.close()
    assert (status, out["verdict"]) == (1, "stuck"), out
    (found,) = [f for f in out["findings"] if f["code"] == pattern.code]
    assert found["file"].endswith("tests/runtime/apps/patterns_app.py"), found
    assert found["line"] in {line_of(tag) for tag in pattern.at}, found
    assert found["waits_on"]["kind"] == pattern.waits_on["kind"], found["waits_on"]
    if pattern.code == "HD601":
        took = sorted(h["line"] for h in found["holders"])
        assert took == sorted(line_of(tag) for tag in pattern.holders_at), found["holders"]
