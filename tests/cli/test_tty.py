"""Every command as a person runs it: on a real pseudo-terminal, colours on, 60, 80 and 200 wide.

The tests used to run the CLI only with its output on pipes, where rich draws
no colour, no live bar and takes its width from `COLUMNS`; on a terminal the
probe crashed and every report padded each line to the terminal's width. Here
each command runs on a pty of its own (tests/tty.py) and, for comparison, on
pipes. Whatever it prints must end with the expected exit code, never a
traceback or "failed unexpectedly", and no line may end in blanks (padding
that people copy, pipe and save). Source code is never wrapped mid-statement:
a line that does not fit ends in "…", and a diff line is printed whole.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import APP_DIR, ROOT, expected, newsroom_argv
from tests.tty import Run, hangdoctor_argv, run_in_pipe, run_in_pty

from hangdoctor.catalog import all_rules, get_rule
from hangdoctor.cli.demo import _fix_diff
from hangdoctor.probe.http import abort_stream, timed_get
from hangdoctor.probe.server import ManagedServer, free_port

COLUMNS = (60, 80, 200)
DUMP = ROOT / "tests" / "data" / "dumps" / "pyspy-text-3.12.txt"
LOCALS_DUMP = ROOT / "tests" / "data" / "dumps" / "pyspy-json-locals-3.12.json"
_ELLIPSIS = "…"


def check(run: Run, code: int, *, printed_by: str | None = None) -> str:
    """The run ended with `code`, did not crash, and padded no line; its text.

    `printed_by` names the CLI module (e.g. "probe") whose console prints the
    output: until it prints through `TrimmedConsole`, padding there is an
    expected failure, reported as such, not a pass.
    """
    assert run.returncode == code, run.describe()
    assert "failed unexpectedly" not in run.text, run.describe()
    assert "Traceback" not in run.text, run.describe()
    padded = run.padded_lines()
    message = f"{len(padded)} of {len(run.lines)} lines end in blanks: {padded[:5]}"
    if padded and printed_by is not None:
        module = ROOT / "src" / "hangdoctor" / "cli" / f"{printed_by}.py"
        if "TrimmedConsole" not in module.read_text(encoding="utf-8"):
            pytest.xfail(f"{module.name} prints through a plain rich Console: {message}")
    assert not padded, message
    return run.text


def on_terminal(*args: str, columns: int, timeout: float = 90.0) -> Run:
    """`hangdoctor ARGS` on a pty; the escapes prove rich saw a colour terminal."""
    run = run_in_pty(hangdoctor_argv(*args), columns=columns, timeout=timeout)
    assert "\x1b[" in run.raw, run.describe()
    return run


def shown_whole_or_cropped(code_line: str, lines: list[str]) -> bool:
    """`code_line` shows on one screen line, whole or cut short with "…"; never wrapped."""
    want = code_line.strip()
    for line in lines:
        if want in line:
            return True
        shown = line.strip()
        if shown.endswith(_ELLIPSIS) and len(shown) > 1 and want.startswith(shown[:-1]):
            return True
    return False


def assert_code_not_wrapped(code: str, run: Run) -> None:
    """Every line of `code` is on one screen line of the run's output."""
    for line in code.splitlines():
        if line.strip():
            assert shown_whole_or_cropped(line, run.lines), (line, run.text)


# ---------------------------------------------------------------- no server needed


@pytest.mark.parametrize("columns", COLUMNS)
def test_explain_on_a_terminal(columns: int) -> None:
    """`explain HD101`: exit 0, unpadded lines, the examples one source line per screen line."""
    run = on_terminal("explain", "HD101", columns=columns)
    text = check(run, 0)
    rule = get_rule("HD101")
    assert "executor-shutdown-on-loop" in text
    assert_code_not_wrapped(rule.bad, run)
    assert_code_not_wrapped(rule.good, run)


@pytest.mark.parametrize("columns", COLUMNS)
def test_explain_list_on_a_terminal(columns: int) -> None:
    """`explain --list`: every code, no padded line (the table used to fill each row)."""
    text = check(on_terminal("explain", "--list", columns=columns), 0)
    for rule in all_rules():
        assert rule.code in text


def _tree(root: Path) -> Path:
    """A small project: one module with findings (one line wider than 60 columns), one clean."""
    pkg = root / "service"
    (pkg / "routes").mkdir(parents=True)
    (pkg / "clean.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    (pkg / "routes" / "feed.py").write_text(
        "import time\n"
        "\n"
        "import requests\n"
        "\n"
        "\n"
        "async def feed(url: str) -> dict[str, int]:\n"
        "    time.sleep(0.5)\n"
        '    response = requests.get(url, timeout=5, headers={"x-request-id": "0123456789"})\n'
        '    return {"status": response.status_code}\n'
    )
    return pkg


def _excerpts(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each source line a scan report shows."""
    pattern = re.compile(r"^\s*>?\s*(\d+) │ (.*)$")
    return [(int(m[1]), m[2]) for m in map(pattern.match, text.splitlines()) if m]


@pytest.mark.parametrize("columns", COLUMNS)
def test_scan_on_a_terminal(columns: int, tmp_path: Path) -> None:
    """`scan`: exit 1, unpadded, and each source line shown whole or cut with "…", not wrapped."""
    pkg = _tree(tmp_path)
    run = run_in_pty(hangdoctor_argv("scan", "--no-cache", str(pkg)), columns=columns, cwd=tmp_path)
    text = check(run, 1)
    assert "HD201" in text and "HD202" in text
    source = (pkg / "routes" / "feed.py").read_text().splitlines()
    shown = _excerpts(text)
    assert shown, text
    for number, line in shown:
        whole = source[number - 1].rstrip()
        cropped = line.endswith(_ELLIPSIS) and whole.startswith(line[:-1])
        assert line == whole or cropped, (number, line, whole)
    long_line = next(n for n, t in shown if "requests.get" in t)
    assert any(t.endswith(_ELLIPSIS) for n, t in shown if n == long_line) == (columns < 100)


@pytest.mark.parametrize("columns", COLUMNS)
def test_analyze_on_a_terminal(columns: int) -> None:
    """`analyze` of a saved dump: exit 1 (blocked), HD101, the fix's code never wrapped."""
    run = on_terminal("analyze", str(DUMP), columns=columns)
    text = check(run, 1)
    assert "HD101" in text
    assert_code_not_wrapped(get_rule("HD101").good, run)


@pytest.mark.parametrize("columns", COLUMNS)
def test_pipes_do_not_pad_either(columns: int, tmp_path: Path) -> None:
    """The same commands with their output on pipes (CI logs, `| less`): no padded line."""
    pkg = _tree(tmp_path)
    for args, code in (
        (("explain", "HD101"), 0),
        (("explain", "--list"), 0),
        (("analyze", str(DUMP)), 1),
        (("scan", "--no-cache", str(pkg)), 1),
        (("watch", "--help"), 0),
    ):
        run = run_in_pipe(hangdoctor_argv(*args), columns=columns, cwd=tmp_path)
        check(run, code)
        assert "\x1b[" not in run.raw, run.describe()  # no colour where no terminal is


def test_scan_report_file_is_not_padded(tmp_path: Path) -> None:
    """`scan -o FILE` (text, 100 wide): no line of the saved report ends in blanks."""
    pkg = _tree(tmp_path)
    out = tmp_path / "report.txt"
    run = run_in_pipe(hangdoctor_argv("scan", "--no-cache", str(pkg), "-o", str(out)), columns=80)
    assert run.returncode == 1, run.describe()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines and [line for line in lines if line != line.rstrip()] == []


@pytest.mark.parametrize(
    ("flags", "heading"),
    [
        ((), "(secrets redacted)"),
        (("--show-secrets",), "(not redacted: --show-secrets)"),
    ],
)
def test_locals_heading_says_whether_secrets_were_redacted(
    flags: tuple[str, ...], heading: str
) -> None:
    """`analyze --locals`: the locals are headed "secrets redacted" only when they were."""
    run = on_terminal("analyze", str(LOCALS_DUMP), "--locals", *flags, columns=120)
    text = check(run, 1)
    title = next(line for line in text.splitlines() if line.startswith("Locals of "))
    assert title.endswith(heading), title


@pytest.mark.parametrize("columns", COLUMNS)
def test_watch_help_on_a_terminal(columns: int) -> None:
    """`watch --help` on a terminal: exit 0, unpadded."""
    text = check(run_in_pty(hangdoctor_argv("watch", "--help"), columns=columns), 0)
    assert "Usage:" in text


def test_short_watch_run_on_a_terminal() -> None:
    """`watch -- python ...` of a program that runs a loop briefly: its exit code, no crash."""
    program = "import asyncio; asyncio.run(asyncio.sleep(0.5)); print('served')"
    run = run_in_pty(hangdoctor_argv("watch", "--", sys.executable, "-c", program), columns=80)
    assert "served" in check(run, 0)


# ---------------------------------------------------------------- real servers


def _wait_until_blocked(base: str) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not timed_get(base + "/health", timeout=0.3).ok:
            return
        time.sleep(0.05)
    raise AssertionError("dropping the stream never blocked the loop")


@pytest.fixture(scope="module")
def blocked_server() -> Iterator[ManagedServer]:
    """One newsroom app, blocked on a dropped stream for two minutes: enough for every width."""
    port = free_port()
    server = ManagedServer(
        newsroom_argv(port),
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"NEWSROOM_UPSTREAM_DELAY": "120", "PYTHONUNBUFFERED": "1"},
        ready_timeout=30.0,
    )
    server.start()
    try:
        abort_stream(server.base_url + "/news/stream", after=0.5)
        _wait_until_blocked(server.base_url)
        yield server
    finally:
        server.stop(grace=1.0)  # its loop is blocked: it cannot shut down gracefully


@pytest.mark.e2e
@pytest.mark.parametrize("columns", COLUMNS)
def test_diagnose_on_a_terminal(blocked_server: ManagedServer, columns: int) -> None:
    """`diagnose` of a live blocked server: exit 1, HD101 at its line, the source as in the
    app (no test marker), no padded line."""
    run = on_terminal("diagnose", "--pid", str(blocked_server.pid), columns=columns)
    text = check(run, 1)
    exp = expected("HD101")
    assert "HD101" in text and f"{Path(exp.file).name}:{exp.line}" in text
    numbered = re.compile(rf"^\s+{exp.line}  (\S.*)$")  # the source line, after its number
    shown = [m[1] for m in map(numbered.search, run.lines) if m]
    assert shown, text
    for line in shown:
        assert line == exp.text or (line[-1] == _ELLIPSIS and exp.text.startswith(line[:-1]))
    assert "hd-expect" not in text


@pytest.mark.e2e
def test_diagnose_on_pipes(blocked_server: ManagedServer) -> None:
    """`diagnose` with its output on a pipe, text and JSON: the same verdict, nothing padded."""
    text = check(
        run_in_pipe(hangdoctor_argv("diagnose", "--pid", str(blocked_server.pid)), columns=80), 1
    )
    assert "HD101" in text and "hd-expect" not in text
    run = run_in_pipe(
        hangdoctor_argv("diagnose", "--pid", str(blocked_server.pid), "--format", "json"),
        columns=80,
    )
    check(run, 1)
    assert [f["code"] for f in json.loads(run.raw)["findings"]] == ["HD101"]


@pytest.mark.e2e
def test_demo_on_a_terminal() -> None:
    """`demo` at 60 columns: exit 0, no padded line, no test marker, every diff line whole
    (the terminal wraps a long one; the demo used to cut it at the width)."""
    run = on_terminal("demo", columns=60, timeout=150)
    text = check(run, 0)
    assert "hd-expect" not in text
    assert "Locals of" not in text  # as `diagnose --pid` prints it: locals only with --locals
    lines = set(run.lines)
    for line in _fix_diff(APP_DIR).splitlines():
        assert line.rstrip() in lines, (line, text[-4000:])
    assert max(len(line) for line in _fix_diff(APP_DIR).splitlines()) > 60  # wrapped, not cut


@pytest.fixture(scope="module")
def short_stall_server() -> Iterator[ManagedServer]:
    """The buggy newsroom app whose dropped streams block the loop for 2 s each."""
    port = free_port()
    server = ManagedServer(
        newsroom_argv(port),
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(ROOT),
        env={"NEWSROOM_UPSTREAM_DELAY": "2", "PYTHONUNBUFFERED": "1"},
        ready_timeout=30.0,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


PROBE = ("--stream", "/news/stream", "--clients", "4", "--duration", "3")
PROBE_TIMING = ("--abort-after", "0.2-0.6", "--seed", "1")


@pytest.mark.e2e
@pytest.mark.parametrize("columns", COLUMNS)
def test_probe_on_a_terminal(short_stall_server: ManagedServer, columns: int) -> None:
    """`probe` of the buggy app on a terminal: its live bar, FAIL (exit 1), no padded line."""
    time.sleep(2.5)  # the stall a previous run left behind is over
    run = on_terminal(
        "probe", short_stall_server.base_url, *PROBE, *PROBE_TIMING, columns=columns, timeout=120
    )
    assert "FAIL" in run.text and "hd-expect" not in run.text, run.describe()
    check(run, 1, printed_by="probe")


@pytest.mark.e2e
@pytest.mark.parametrize("columns", COLUMNS)
def test_doctor_on_a_terminal(columns: int) -> None:
    """`doctor` (it starts the buggy app itself): exit 1, the recommended fix, no padded line."""
    argv = newsroom_argv(free_port())
    run = on_terminal("doctor", *PROBE, "--", *argv, columns=columns, timeout=150)
    assert "HD101" in run.text and "hd-expect" not in run.text, run.describe()
    check(run, 1, printed_by="doctor")
