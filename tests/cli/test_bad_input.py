"""Bad input gets one clear sentence and the remedy, exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from tests.conftest import ROOT, run_hangdoctor
from tests.tmpfs import fill, tiny_tmpfs

from hangdoctor.cli.main import cli
from hangdoctor.cli.options import FiniteFloatRange


def _assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "remedy: " in proc.stderr, proc.stderr
    for needle in needles:
        assert needle.lower() in proc.stderr.lower(), proc.stderr


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A root-owned Python process that does nothing for a minute."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL
    )
    yield proc
    proc.kill()
    proc.wait(5)


def test_dead_pid() -> None:
    """A PID that no longer exists says so."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    out = run_hangdoctor("diagnose", "--pid", str(proc.pid))
    _assert_clean_failure(out, str(proc.pid))


def test_not_a_python_process() -> None:
    """A non-Python process (sleep) is named as such."""
    sleep = subprocess.Popen(["sleep", "60"])
    try:
        out = run_hangdoctor("diagnose", "--pid", str(sleep.pid))
    finally:
        sleep.kill()
        sleep.wait(5)
    _assert_clean_failure(out, "python")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process of another user")
def test_no_permission_for_another_users_process(sleeper: subprocess.Popen[bytes]) -> None:
    """An unprivileged user diagnosing a root-owned process is told why and what to do."""
    out = run_hangdoctor("diagnose", "--pid", str(sleeper.pid), user="65534")
    _assert_clean_failure(out, "user")


def test_no_matching_process() -> None:
    """--match with no match says nothing matched and how to choose."""
    out = run_hangdoctor("diagnose", "--match", "no-such-process-7f3a9c")
    _assert_clean_failure(out, "no-such-process-7f3a9c")


def test_pid_and_match_together_is_a_usage_error() -> None:
    """Conflicting options are a usage error (exit 2), not a crash."""
    out = run_hangdoctor("diagnose", "--pid", "1", "--match", "x")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "either --pid or --match" in out.stderr


def test_unknown_rule() -> None:
    """explain with an unknown code lists what exists."""
    out = run_hangdoctor("explain", "HD999")
    _assert_clean_failure(out, "HD101")


# --- analyze: pipes, terminals, cut dumps, deep JSON, encodings ------------------------

DUMPS = ROOT / "tests" / "data" / "dumps"


def test_analyze_a_fifo_nobody_writes_to_gives_up_with_a_sentence(tmp_path: Path) -> None:
    """`analyze FIFO` with no writer ends after the pipe deadline (10 s) with one sentence,
    exit 2; it used to wait forever (the subprocess deadline catches a regression)."""
    fifo = tmp_path / "dump.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    try:
        out = run_hangdoctor("analyze", str(fifo), timeout=60)
    except subprocess.TimeoutExpired:
        with open(fifo, "wb"):  # let go of the blocked reader before failing
            pass
        pytest.fail("analyze waited on a FIFO with no writer for 60 s")
    _assert_clean_failure(out, "nothing was written", "named pipe")
    assert time.monotonic() - started < 45


def test_analyze_reads_a_pipe_that_has_a_writer(tmp_path: Path) -> None:
    """A FIFO (as `analyze <(py-spy dump ...)` gives) is read to its end and analysed."""
    fifo = tmp_path / "dump.fifo"
    os.mkfifo(fifo)
    dump = DUMPS / "pyspy-text-3.12.txt"
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.5; cat '{dump}' > '{fifo}'"])
    try:
        out = run_hangdoctor("analyze", str(fifo), "--format", "json", timeout=60)
    finally:
        writer.kill()
        writer.wait(5)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["findings"][0]["code"] == "HD101"


def test_analyze_stdin_that_is_a_terminal_is_refused(tmp_path: Path) -> None:
    """`analyze -` with a terminal on stdin says so instead of waiting for typing."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hangdoctor", "analyze", "-"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    _assert_clean_failure(proc, "is a terminal")


def test_analyze_a_pyspy_dump_cut_inside_a_stack(tmp_path: Path) -> None:
    """A py-spy text dump cut after a line inside the loop thread's stack was HEALTHY ("no
    event loop found"): now exit 2, "looks cut off at line N"."""
    lines = (DUMPS / "pyspy-text-3.12.txt").read_text(encoding="utf-8").splitlines(True)
    cut = next(i for i, t in enumerate(lines, 1) if "Executor.__exit__" in t)
    dump = tmp_path / "cut.txt"
    dump.write_text("".join(lines[:cut]), encoding="utf-8")
    out = run_hangdoctor("analyze", str(dump))
    _assert_clean_failure(out, f"looks cut off at line {cut}")
    assert "HEALTHY" not in out.stdout


def test_analyze_deeply_nested_json(tmp_path: Path) -> None:
    """JSON nested 100 000 deep is a bad dump in one sentence, not "failed unexpectedly"."""
    dump = tmp_path / "deep.json"
    dump.write_text("[" * 100_000 + "]" * 100_000)
    out = run_hangdoctor("analyze", str(dump))
    _assert_clean_failure(out, "nested too deeply")


def _ascii_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="ascii", COLUMNS="120")
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "hangdoctor", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",  # click writes its own messages as UTF-8 to an ASCII stream
        timeout=90,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_ascii_only_output_never_crashes(tmp_path: Path) -> None:
    """With PYTHONIOENCODING=ascii, a dump whose paths and functions are not ASCII, a scan
    of a non-ASCII path and `explain` print their results (non-ASCII as \\xe9 escapes) with
    their usual exit codes, never "failed unexpectedly"."""
    text = (DUMPS / "pyspy-text-3.12.txt").read_text(encoding="utf-8")
    text = text.replace("canonical_hang.py", "café_ünï.py").replace("fetch_news", "récupérer")
    (tmp_path / "données.txt").write_text(text, encoding="utf-8")
    out = _ascii_run("analyze", "données.txt", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "HD101" in out.stdout and "caf\\xe9_\\xfcn\\xef.py:39" in out.stdout
    (tmp_path / "sé").mkdir()
    (tmp_path / "sé" / "ü.py").write_text(
        "import time\n\n\nasync def f():\n    time.sleep(1)  # déjà\n", encoding="utf-8"
    )
    out = _ascii_run("scan", "--no-cache", "sé", cwd=tmp_path)
    assert out.returncode == 1 and "s\\xe9/\\xfc.py" in out.stdout, out.stdout + out.stderr
    out = _ascii_run("explain", "HD101", cwd=tmp_path)
    assert out.returncode == 0 and "HD101" in out.stdout, out.stderr
    out = _ascii_run("analyze", "nï.txt", cwd=tmp_path)
    _assert_clean_failure(out, "was not found")


# --- every float option ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["diagnose", "--pid", "1", "--interval"],
        ["diagnose", "--pid", "1", "--timeout"],
        ["doctor", "--stream", "/s", "--duration"],
        ["doctor", "--stream", "/s", "--health-timeout"],
        ["doctor", "--stream", "/s", "--ready-timeout"],
        ["watch", "--threshold"],
    ],
    ids=lambda a: f"{a[0]} {a[-1]}",
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_float_options_refuse_nan_inf_and_negative(argv: list[str], value: str) -> None:
    """`--interval nan` was accepted (click's FloatRange compares, and nan compares false):
    nan, inf and negative values are a usage error naming the option, exit 2."""
    tail = ["--", "true"] if argv[0] in ("doctor", "watch") else []
    result = CliRunner().invoke(cli, [*argv, value, *tail])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{argv[-1]}'" in result.stderr
    assert "finite number" in result.stderr or "not in the range" in result.stderr


_COMMANDS = sorted(cli.list_commands(click.Context(cli)))


@pytest.mark.parametrize("name", _COMMANDS)
def test_every_float_option_uses_the_shared_type(name: str) -> None:
    """No command takes a float option that would let nan or inf through."""
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    lax = [
        p.opts[0]
        for p in command.params
        if isinstance(p.type, click.types.FloatParamType)
        and not isinstance(p.type, FiniteFloatRange)
    ]
    assert lax == []


# --- diagnose --save --------------------------------------------------------------------


@pytest.fixture
def asyncio_process() -> Iterator[subprocess.Popen[bytes]]:
    """A Python process whose event loop idles for two minutes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import asyncio; asyncio.run(asyncio.sleep(120))"],
        stdin=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # the loop is running
    yield proc
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_diagnose_save_to_a_missing_directory_fails_before_sampling(
    asyncio_process: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """--save into a directory that does not exist is refused at once: with 50 samples 5 s
    apart (four minutes of sampling) the answer still comes within the 60 s deadline."""
    out = run_hangdoctor(
        "diagnose",
        "--pid",
        str(asyncio_process.pid),
        "--samples",
        "50",
        "--interval",
        "5",
        "--save",
        str(tmp_path / "missing" / "capture.json"),
        timeout=60,
    )
    _assert_clean_failure(out, "cannot be saved", "does not exist")
    assert out.stdout == ""


def test_diagnose_save_on_a_full_disk_prints_the_diagnosis_then_fails(
    asyncio_process: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """When the save fails after sampling (a full disk), the diagnosis is still printed,
    then one sentence says the capture was not saved, exit 2."""
    with tiny_tmpfs(tmp_path / "disk") as disk:
        fill(disk)
        out = run_hangdoctor(
            "diagnose",
            "--pid",
            str(asyncio_process.pid),
            "--format",
            "json",
            "--save",
            str(disk / "capture.json"),
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert json.loads(out.stdout)["verdict"] == "healthy"
    assert out.stderr.startswith("error: The capture cannot be saved to ")
    assert "No space left on device" in out.stderr
