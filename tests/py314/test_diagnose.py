"""`diagnose` on Python 3.14 targets: Debian's python3.14 in a root, from outside and inside.

The newsroom app runs under python3.14 in a chroot with its own mount namespace,
the way a container runs it. The host's hangdoctor (this checkout, on the suite's
Python) diagnoses it from outside; a hangdoctor installed from this checkout's wheel
on 3.14 inside the root diagnoses it from the target's own namespace, as a user who
`kubectl exec`s into the pod would. Both must name HD101 at the example's line.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from typing import Any

import pytest
from tests.conftest import diagnose_json, expected
from tests.py314.conftest import Start314, Target
from tests.py314.root import Py314Root

from hangdoctor.probe.http import abort_stream, timed_get

pytestmark = pytest.mark.e2e

BLOCK_S = 4.0


def _wait_until_blocked(base: str) -> None:
    """Wait until /health stops answering quickly: the cause is live."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not timed_get(base + "/health", timeout=0.3).ok:
            return
        time.sleep(0.05)
    raise AssertionError("the loop never blocked")


def _block_with_stream_abort(target: Target) -> None:
    abort_stream(target.base_url + "/news/stream", after=0.5)
    _wait_until_blocked(target.base_url)


def _finding(out: dict[str, Any], code: str) -> dict[str, Any]:
    codes = [f["code"] for f in out["findings"]]
    assert code in codes, (codes, out["notes"])
    return next(f for f in out["findings"] if f["code"] == code)


def _assert_hd101_at_the_example(out: dict[str, Any], pid: int) -> None:
    assert out["verdict"] == "blocked", out
    finding = _finding(out, "HD101")
    where = expected("HD101")
    assert finding["pid"] == pid
    assert finding["file"].endswith(where.file), finding["file"]
    assert finding["line"] == where.line, (finding["line"], finding.get("source"))
    assert finding["source"], "the source line is read through /proc/PID/root"
    waits = finding["waits_for"]
    assert waits["function"] == "fetch_news"
    assert waits["line"] == expected("worker").line


def _target_python(pid: int) -> str:
    """The target's interpreter as the kernel sees it: proves the test ran 3.14."""
    return os.path.basename(os.readlink(f"/proc/{pid}/exe"))


def test_root_has_debian_python_314(py314_root: Py314Root) -> None:
    """The cached root holds Debian's python3.14 and reports a 3.14 version."""
    assert py314_root.python_version.startswith("3.14."), py314_root
    proc = py314_root.run(
        ["/usr/bin/python3.14", "-c", "import sys; print(sys.version)"], timeout=60
    )
    assert proc.stdout.startswith(py314_root.python_version)


def test_diagnose_from_outside_names_hd101(start314: Start314) -> None:
    """GIVEN the canonical SSE hang in a 3.14 target in its own mount namespace
    WHEN the host's hangdoctor diagnoses its pid THEN HD101 at the example's line."""
    target = start314()
    assert _target_python(target.pid) == "python3.14"
    _block_with_stream_abort(target)
    status, out = diagnose_json(target.pid)
    assert status == 1
    _assert_hd101_at_the_example(out, target.pid)


def test_diagnose_from_inside_with_hangdoctor_on_314(
    py314_root: Py314Root, start314: Start314, hangdoctor314: str
) -> None:
    """GIVEN the same hang WHEN hangdoctor, installed from the wheel on 3.14 in the root, runs
    in the target's mount namespace and root (as from `kubectl exec`) THEN HD101 at the line."""
    target = start314()
    python = os.path.join(os.path.dirname(hangdoctor314), "python")
    where = py314_root.run(
        [python, "-c", "import hangdoctor; print(hangdoctor.__file__)"], timeout=60
    )
    # installed from the wheel into the root's 3.14 venv, not the checkout's editable src/
    assert where.stdout.startswith("/opt/hd-hangdoctor/lib/python3.14/site-packages/"), where
    _block_with_stream_abort(target)
    argv = py314_root.nsenter_argv(
        target.pid,
        ["COLUMNS=120", "NO_COLOR=1", hangdoctor314, "diagnose", "--pid", str(target.pid),
         "--format", "json"],
    )  # fmt: skip
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    _assert_hd101_at_the_example(json.loads(proc.stdout), target.pid)


@pytest.mark.parametrize(("route", "code"), [("sleep", "HD201"), ("lock", "HD206")])
def test_blocking_call_from_outside(start314: Start314, route: str, code: str) -> None:
    """A blocking call in a 3.14 target's handler is named at its line from outside: the
    innermost frames and line numbers moved again in 3.14's stdlib."""
    target = start314()
    t = threading.Thread(
        target=timed_get,
        args=(f"{target.base_url}/causes/{route}?seconds={BLOCK_S}",),
        kwargs={"timeout": 30.0},
        daemon=True,
    )
    t.start()
    try:
        _wait_until_blocked(target.base_url)
        status, out = diagnose_json(target.pid)
    finally:
        t.join(timeout=30)
    assert status == 1 and out["verdict"] == "blocked", out
    finding = _finding(out, code)
    assert finding["file"].endswith(expected(code).file)
    assert finding["line"] == expected(code).line


def test_fixed_app_on_314_is_healthy(start314: Start314) -> None:
    """The fixed app after a dropped stream is healthy on 3.14: no false alarm, exit 0."""
    from tests.py314.conftest import uvicorn_argv

    target = start314(lambda py, port: uvicorn_argv(py, port, "api.main:fixed_app"))
    abort_stream(target.base_url + "/news/stream", after=0.5)
    time.sleep(0.5)
    assert timed_get(target.base_url + "/health", timeout=2.0).ok
    status, out = diagnose_json(target.pid)
    assert status == 0 and out["verdict"] == "healthy", out
    assert out["findings"] == []
