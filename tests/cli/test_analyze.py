"""`hangdoctor analyze FILE` on saved dumps, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.test_diagnose import _abort_stream_and_wait
from tests.conftest import APP_DIR, ServerFactory, expected, run_hangdoctor


@pytest.mark.e2e
def test_save_then_analyze_gives_the_same_diagnosis(
    newsroom: ServerFactory, tmp_path: Path
) -> None:
    """A live capture saved with --save and analysed later gives the same finding."""
    server = newsroom()
    _abort_stream_and_wait(server.base_url)
    saved = tmp_path / "capture.json"
    live = run_hangdoctor(
        "diagnose", "--pid", str(server.pid), "--format", "json", "--save", str(saved)
    )
    assert live.returncode == 1, live.stderr
    later = run_hangdoctor("analyze", str(saved), "--format", "json")
    assert later.returncode == 1, later.stderr
    a, b = json.loads(live.stdout), json.loads(later.stdout)
    assert a["verdict"] == b["verdict"] == "blocked"
    fa, fb = a["findings"][0], b["findings"][0]
    for key in ("code", "pid", "file", "line", "function", "blocked_for_s"):
        assert fa[key] == fb[key], key
    assert fb["line"] == expected("HD101").line


@pytest.mark.e2e
def test_analyze_pyspy_text_dump_with_source_root(newsroom: ServerFactory, tmp_path: Path) -> None:
    """Three `py-spy dump` text outputs in one file are three samples: blocked, HD101."""
    import subprocess
    import sys
    import time

    server = newsroom()
    _abort_stream_and_wait(server.base_url)
    pyspy = str(Path(sys.executable).parent / "py-spy")
    dump = tmp_path / "dump.txt"
    with dump.open("w") as out:
        for _ in range(3):
            text = subprocess.run(
                [pyspy, "dump", "--pid", str(server.pid)],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout
            out.write(text)
            time.sleep(0.3)
    proc = run_hangdoctor("analyze", str(dump), "--source-root", str(APP_DIR))
    assert proc.returncode == 1, proc.stderr
    assert "HD101" in proc.stdout
    assert "with ThreadPoolExecutor(max_workers=2) as ex:" in proc.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02\xff\xfe garbage \x00" * 20, ""),
        (b"hello, this is not a dump\nat all\n", ""),
        (b'[{"pid": 1, "thread_id": 2, "frames": [{"name": "f", "filename"', ""),
    ],
    ids=["empty", "binary", "text", "truncated-json"],
)
def test_bad_dump_files(tmp_path: Path, content: bytes, needle: str) -> None:
    """Garbage, empty and truncated files: one sentence, exit 2, no traceback."""
    f = tmp_path / "dump"
    f.write_bytes(content)
    out = run_hangdoctor("analyze", str(f))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ")
    assert needle in out.stderr.lower()


def test_missing_dump_file(tmp_path: Path) -> None:
    """A path that does not exist says so."""
    out = run_hangdoctor("analyze", str(tmp_path / "nope.json"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "error: " in out.stderr
