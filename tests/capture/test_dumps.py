"""Saved dumps read back into snapshots: real py-spy, faulthandler and pystack output.

The fixtures in tests/data/dumps/ are captures of one real hung process per
CPython version (see its README); bad inputs are made from them at run time.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest

from hangdoctor.analysis import analyze
from hangdoctor.capture.dumps import (
    MAX_DUMP_BYTES,
    DumpFormat,
    capture_to_json,
    detect_format,
    load_dump,
    parse_dump,
    save_capture,
)
from hangdoctor.errors import BadDumpError, HangdoctorError
from hangdoctor.model import Snapshot, Thread, Verdict

DUMPS = Path(__file__).resolve().parents[1] / "data" / "dumps"
FIXTURES = sorted(p for p in DUMPS.iterdir() if p.suffix in (".txt", ".json", ".jsonl"))
HANG_FIXTURES = [p for p in FIXTURES if not p.name.startswith("faulthandler-deep")]
_SCRIPT = (DUMPS / "canonical_hang.py").read_text(encoding="utf-8").splitlines()
WITH_LINE = next(i for i, t in enumerate(_SCRIPT, 1) if "with ThreadPoolExecutor(max_workers" in t)
SLEEP_LINE = next(i for i, t in enumerate(_SCRIPT, 1) if "time.sleep(60)" in t)

_FORMAT_OF_PREFIX = {
    "pyspy-text": DumpFormat.PYSPY_TEXT,
    "pyspy-json": DumpFormat.PYSPY_JSON,
    "pyspy-jsonl": DumpFormat.PYSPY_JSON,
    "capture": DumpFormat.HANGDOCTOR_CAPTURE,
    "faulthandler": DumpFormat.FAULTHANDLER,
    "pystack": DumpFormat.PYSTACK,
}
_SINGLE = ("locals", "native", "abort", "core")


def _expected_format(path: Path) -> DumpFormat:
    prefix = max((p for p in _FORMAT_OF_PREFIX if path.name.startswith(p + "-")), key=len)
    return _FORMAT_OF_PREFIX[prefix]


def _expected_samples(path: Path) -> int:
    if path.name.startswith("faulthandler-deep"):
        return 2
    return 1 if any(word in path.stem for word in _SINGLE) else 3


def _loop_thread(snap: Snapshot) -> Thread:
    return next(t for t in snap.threads if any("_run_once" in f.function for f in t.frames))


def _worker_thread(snap: Snapshot) -> Thread:
    return next(t for t in snap.threads if t.frames and t.frames[0].function == "fetch_news")


def _bad(
    tmp_path: Path, content: bytes | str, *, name: str = "dump.txt"
) -> tuple[BadDumpError, str]:
    f = tmp_path / name
    if isinstance(content, str):
        f.write_text(content, encoding="utf-8")
    else:
        f.write_bytes(content)
    with pytest.raises(BadDumpError) as info:
        load_dump(f)
    return info.value, str(f)


def _assert_one_sentence(err: HangdoctorError) -> None:
    assert err.message.endswith("."), err.message
    assert not re.search(r"\.\s+[A-Z]", err.message), err.message
    assert err.remedy, "every error carries the remedy"


# --- every real fixture ---------------------------------------------------------------


def test_fixtures_cover_every_format_and_version() -> None:
    """The committed captures cover the four formats, the capture file and 3.11-3.13."""
    names = {p.name for p in FIXTURES}
    for fmt in ("pyspy-text", "pyspy-json", "faulthandler-later", "faulthandler-usr1"):
        for version in ("3.11", "3.12", "3.13"):
            assert any(n.startswith(f"{fmt}-") and version in n for n in names), (fmt, version)
    assert {_expected_format(p) for p in FIXTURES} == set(DumpFormat)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_format_and_sample_count(path: Path) -> None:
    """Each fixture is recognised as its format and split into its number of samples."""
    text = path.read_text(encoding="utf-8")
    assert detect_format(text) is _expected_format(path)
    snaps = load_dump(path)
    assert len(snaps) == _expected_samples(path)
    assert all(snap.threads for snap in snaps)


@pytest.mark.parametrize("path", HANG_FIXTURES, ids=lambda p: p.name)
def test_canonical_hang_analyses_to_blocked_hd101(path: Path) -> None:
    """The full pipeline on each capture of the hang: blocked, HD101 at the `with` line."""
    snaps = load_dump(path)
    diagnosis = analyze(snaps, source_root=str(DUMPS))
    assert diagnosis.verdict.value == "blocked", diagnosis
    finding = next(f for f in diagnosis.findings if f.code == "HD101")
    assert finding.file.endswith("canonical_hang.py")
    assert finding.line == WITH_LINE
    assert finding.source == "with ThreadPoolExecutor(max_workers=2) as ex:"
    assert finding.waits_for is not None
    assert (finding.waits_for.function, finding.waits_for.line) == ("fetch_news", SLEEP_LINE)
    assert diagnosis.samples == len(snaps)
    single = any("Only one sample" in n for n in diagnosis.notes)
    assert single == (len(snaps) == 1)


@pytest.mark.parametrize("path", HANG_FIXTURES, ids=lambda p: p.name)
def test_loop_thread_frames_are_innermost_first(path: Path) -> None:
    """Whatever order the tool prints, the join is frame 0 and the script's `<module>` last."""
    for snap in load_dump(path):
        frames = _loop_thread(snap).frames
        assert frames[0].function.endswith(("_wait_for_tstate_lock", "join"))
        assert frames[-1].function == "<module>"
        assert frames[-1].display_file.endswith("canonical_hang.py")
        user = next(f for f in frames if f.function == "stream")
        assert user.line == WITH_LINE


# --- py-spy text ----------------------------------------------------------------------


def test_pyspy_text_header_threads_and_flags() -> None:
    """pid, command, version from the header; decimal OS tids, names, idle flags, short paths."""
    snaps = load_dump(DUMPS / "pyspy-text-3.11.txt")
    assert len({s.pid for s in snaps}) == 1
    snap = snaps[0]
    assert snap.source == "py-spy-text"
    assert snap.python_version == "3.11.7"
    assert snap.command is not None and snap.command.endswith("canonical_hang.py plain")
    assert snap.taken_at is None
    main = _loop_thread(snap)
    assert main.name == "MainThread"
    assert main.tid == snap.pid  # the main thread's OS tid is the pid
    assert main.ident is None
    assert (main.active, main.owns_gil) == (False, None)
    first = main.frames[0]
    assert (first.function, first.file, first.short_file, first.line) == (
        "Thread._wait_for_tstate_lock",
        "threading.py",
        "threading.py",
        1139,
    )
    assert _worker_thread(snap).name == "ThreadPoolExecutor-0_0"


def test_pyspy_text_locals_names_reprs_and_addresses() -> None:
    """--locals: arguments and locals with their reprs; the object address is read from it."""
    snap = load_dump(DUMPS / "pyspy-text-locals-3.11.txt")[0]
    main = _loop_thread(snap)
    wait = main.frames[0]
    by_name = {loc.name: loc for loc in wait.locals}
    assert by_name["block"].repr == "True" and by_name["block"].is_arg
    assert by_name["timeout"].repr == "-1" and by_name["timeout"].addr is None
    assert not by_name["lock"].is_arg
    joined = by_name["self"]
    assert joined.repr is not None and joined.repr.startswith("<Thread at 0x")
    assert joined.addr == int(joined.repr.split()[-1].rstrip(">"), 16)
    worker_run = next(f for f in _worker_thread(snap).frames if f.function == "Thread.run")
    assert {loc.addr for loc in worker_run.locals if loc.name == "self"} == {joined.addr}


def test_pyspy_text_native_frames_are_dropped() -> None:
    """--native: C frames are left out and the Python frames are the same as without it."""
    native = load_dump(DUMPS / "pyspy-text-native-3.11.txt")[0]
    plain = load_dump(DUMPS / "pyspy-text-3.11.txt")[0]
    raw = (DUMPS / "pyspy-text-native-3.11.txt").read_text(encoding="utf-8")
    assert "libc.so.6" in raw and "_asynciomodule.c" in raw
    for thread in native.threads:
        assert not any(f.file.endswith((".so.6", ".c")) or ".so" in f.file for f in thread.frames)
    assert [f.function for f in _loop_thread(native).frames] == [
        f.function for f in _loop_thread(plain).frames
    ]


def test_pyspy_text_hex_ids_unnamed_threads_and_gil() -> None:
    """Without native tids py-spy prints the ident in hex; `active+gil` sets both flags."""
    text = (
        "Process 42: python app.py\n"
        "Python v3.12.1 (/usr/bin/python3.12)\n"
        "\n"
        'Thread 0x7F3ECFCA3F16 (active+gil): "MainThread"\n'
        "    spin (app.py:3)\n"
        "    <module> (app.py:5)\n"
        "Thread 0x7F3ECE000640 (active)\n"
        "    work (app.py:9)\n"
    )
    (snap,) = parse_dump(text)
    main, other = snap.threads
    assert main.tid == main.ident == 0x7F3ECFCA3F16
    assert (main.active, main.owns_gil, main.name) == (True, True, "MainThread")
    assert (other.active, other.owns_gil, other.name) == (True, False, None)
    assert [f.function for f in main.frames] == ["spin", "<module>"]
    assert snap.pid == 42


# --- py-spy JSON ----------------------------------------------------------------------


def test_pyspy_json_concatenated_and_json_lines_agree() -> None:
    """Three appended `py-spy dump --json` lists and the same samples as JSON Lines are equal."""
    appended = load_dump(DUMPS / "pyspy-json-3.13.json")
    lines = load_dump(DUMPS / "pyspy-jsonl-3.13.jsonl")
    assert appended == lines
    assert len(appended) == 3
    snap = appended[0]
    assert snap.pid != 0 and snap.source == "py-spy"
    main = _loop_thread(snap)
    assert main.name == "MainThread" and main.tid == snap.pid
    assert main.ident is not None and main.ident != main.tid
    assert main.frames[0].file.endswith("/lib/python3.13/threading.py")
    assert main.frames[0].short_file == "threading.py"


def test_pyspy_json_locals_carry_addresses() -> None:
    """JSON --locals: the `self` joined in Thread.join is the worker's Thread.run `self`."""
    snap = load_dump(DUMPS / "pyspy-json-locals-3.12.json")[0]
    join = next(f for f in _loop_thread(snap).frames if f.function == "Thread.join")
    joined = next(loc for loc in join.locals if loc.name == "self")
    assert joined.is_arg and isinstance(joined.addr, int)
    assert joined.repr == f"<Thread at {joined.addr:#x}>"
    run = next(f for f in _worker_thread(snap).frames if f.function == "Thread.run")
    assert [loc.addr for loc in run.locals if loc.name == "self"] == [joined.addr]


def test_pyspy_json_native_frames_are_dropped() -> None:
    """JSON --native: frames of shared libraries and C files are left out."""
    raw = json.loads((DUMPS / "pyspy-json-native-3.11.json").read_text(encoding="utf-8"))
    assert any(f["module"] for t in raw for f in t["frames"])
    (snap,) = load_dump(DUMPS / "pyspy-json-native-3.11.json")
    for thread in snap.threads:
        assert all(f.file.endswith(".py") for f in thread.frames), thread
    assert _worker_thread(snap).frames[0].line == SLEEP_LINE


# --- hangdoctor's own capture ---------------------------------------------------------


def test_capture_fixture_keeps_the_clock() -> None:
    """A saved capture keeps taken_at, so the blocked time is measured, not unknown."""
    snaps = load_dump(DUMPS / "capture-3.12.json")
    stamps = [s.taken_at for s in snaps if s.taken_at is not None]
    assert len(stamps) == 3
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    finding = analyze(snaps).findings[0]
    assert finding.blocked_for_s is not None and finding.blocked_for_s > 0


def test_save_capture_round_trips_losslessly(tmp_path: Path) -> None:
    """save_capture then load_dump gives back equal snapshots, locals and clock included."""
    snaps = [
        dataclasses.replace(s, taken_at=1_700_000_000.25 + i, duration_s=0.01, cwd="/srv")
        for i, s in enumerate(load_dump(DUMPS / "pyspy-json-locals-3.11.json") * 2)
    ]
    out = save_capture(snaps, tmp_path / "capture.json")
    assert out == tmp_path / "capture.json"
    assert load_dump(out) == snaps
    doc = json.loads(capture_to_json(snaps))
    assert (doc["format"], doc["version"]) == ("hangdoctor-capture", 1)
    assert [p.name for p in tmp_path.iterdir()] == ["capture.json"]  # no temp file left


def test_save_capture_to_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    """Saving where no directory exists raises a HangdoctorError naming the path."""
    with pytest.raises(HangdoctorError) as info:
        save_capture([], tmp_path / "nope" / "capture.json")
    assert "cannot be saved" in info.value.message
    _assert_one_sentence(info.value)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"format": "hangdoctor-capture", "version": 2, "snapshots": []}, "newer hangdoctor"),
        ({"format": "hangdoctor-capture", "snapshots": []}, "without a valid version"),
        ({"format": "hangdoctor-capture", "version": 1, "snapshots": [{"x": 1}]}, "malformed"),
        ({"verdict": "blocked", "findings": [], "loops": []}, "hangdoctor report"),
        ({"threads": []}, "neither a py-spy dump"),
        ([{"thread_id": 1}], "not a py-spy dump"),
    ],
    ids=["newer", "no-version", "malformed", "report", "other-object", "no-frames"],
)
def test_json_of_the_wrong_shape(tmp_path: Path, doc: object, needle: str) -> None:
    """JSON that is not a dump we read says what it is instead."""
    err, _ = _bad(tmp_path, json.dumps(doc), name="dump.json")
    assert needle in err.message
    _assert_one_sentence(err)


# --- faulthandler ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_faulthandler_threads_and_bare_names(version: str) -> None:
    """Idents in hex, no names, bare function names, absolute paths, no pid and no clock."""
    snaps = load_dump(DUMPS / f"faulthandler-usr1-{version}.txt")
    for snap in snaps:
        assert (snap.pid, snap.taken_at, snap.source) == (0, None, "faulthandler")
        main = _loop_thread(snap)
        assert main.tid == main.ident and main.tid > 0xFFFF
        assert main.name is None
        assert main.frames[0].function in ("_wait_for_tstate_lock", "join")
        assert main.frames[0].file.endswith(f"/lib/python{version}/threading.py")
        assert "." not in main.frames[0].function
        assert _worker_thread(snap).frames[0].line == SLEEP_LINE
    # the SIGUSR1 dumps follow each other with no separator: the same idents again
    first = {t.tid for t in snaps[0].threads}
    assert [{t.tid for t in s.threads} for s in snaps[1:]] == [first, first]


def test_faulthandler_timeout_dumps_split_on_their_header() -> None:
    """dump_traceback_later with repeat: each `Timeout (...)!` starts a sample."""
    text = (DUMPS / "faulthandler-later-3.12.txt").read_text(encoding="utf-8")
    assert text.count("Timeout (") == 3
    snaps = parse_dump(text)
    assert len(snaps) == 3
    assert all(len(s.threads) == 3 for s in snaps)  # loop, worker and the cancelling Timer


def test_faulthandler_deep_stack_and_single_thread_form() -> None:
    """A deep stack cut with `...` keeps its 100 frames; `Stack (...)` is a one-thread sample."""
    all_threads, current = load_dump(DUMPS / "faulthandler-deep-3.12.txt")
    (deep,) = all_threads.threads
    assert len(deep.frames) == 100
    assert deep.frames[0].function == "deep"
    (only,) = current.threads
    assert (only.tid, only.name) == (0, None)
    assert len(only.frames) == 100


def test_faulthandler_thread_without_python_frames() -> None:
    """`<no Python frame>` is a thread with no frames, not a dump cut short."""
    text = (
        "Thread 0x00007f0000000001 (most recent call first):\n"
        "  <no Python frame>\n"
        "\n"
        "Current thread 0x00007f0000000002 (most recent call first):\n"
        '  File "/srv/app.py", line 3 in main\n'
        "Thread 0x00007f0000000003 (most recent call first):\n"
        "  <no Python frame>\n"
    )
    (snap,) = parse_dump(text)
    assert [len(t.frames) for t in snap.threads] == [0, 1, 0]


# --- pystack --------------------------------------------------------------------------


def test_pystack_frames_are_reversed_and_c_frames_dropped() -> None:
    """Most recent call LAST is turned innermost first; (C) frames are not kept."""
    snap = load_dump(DUMPS / "pystack-native-locals-3.12.txt")[0]
    assert snap.source == "pystack" and snap.pid == 0
    main = _loop_thread(snap)
    assert main.name == "python3"  # pystack prints the OS thread name
    functions = [f.function for f in main.frames]
    assert functions[:3] == ["_wait_for_tstate_lock", "join", "shutdown"]
    assert functions[-1] == "<module>"
    assert all(f.file.endswith(".py") for f in main.frames)
    plain = _loop_thread(load_dump(DUMPS / "pystack-3.12.txt")[0])
    assert [(f.function, f.line) for f in plain.frames] == [
        (f.function, f.line) for f in main.frames
    ]


def test_pystack_locals_with_addresses() -> None:
    """pystack --locals: arguments and locals; the joined Thread's address links the worker."""
    snap = load_dump(DUMPS / "pystack-native-locals-3.12.txt")[0]
    join = next(f for f in _loop_thread(snap).frames if f.function == "join")
    joined = next(loc for loc in join.locals if loc.name == "self")
    assert joined.is_arg and joined.addr is not None
    worker_frames = _worker_thread(snap).frames
    worker = next(f for f in worker_frames if f.function == "_worker")
    assert {loc.name for loc in worker.locals if not loc.is_arg} == {"work_item"}
    run = next(f for f in worker_frames if f.function == "run" and "threading" in f.file)
    assert [loc.addr for loc in run.locals if loc.name == "self"] == [joined.addr]


def test_pystack_core_header_gives_pid_and_command() -> None:
    """`pystack core` prints the crashed process first: its pid and arguments are kept."""
    (snap,) = load_dump(DUMPS / "pystack-core-3.12.txt")
    assert snap.pid != 0
    assert _loop_thread(snap).tid == snap.pid  # the main thread's OS tid is the pid
    assert snap.command is not None and "python3" in snap.command
    assert analyze([snap]).findings[0].code == "HD101"


def test_pystack_gil_flags_and_empty_threads() -> None:
    """`[Has the GIL,Garbage collecting]` sets owns_gil; an empty frame stack is kept."""
    text = (
        "Traceback for thread 7 (python3) [Has the GIL,Garbage collecting] "
        "(most recent call last):\n"
        '    (Python) File "/srv/app.py", line 9, in <module>\n'
        "        main()\n"
        '    (Python) File "/srv/app.py", line 4, in main\n'
        "        build()\n"
        "\n"
        "The frame stack for thread 8 is empty\n"
        "Traceback for thread 9 [] (most recent call last):\n"
        '    (Python) File "/srv/app.py", line 12, in worker\n'
    )
    (snap,) = parse_dump(text)
    first, empty, third = snap.threads
    assert (first.tid, first.owns_gil, first.active, first.name) == (7, True, True, "python3")
    assert [f.function for f in first.frames] == ["main", "<module>"]
    assert (empty.tid, empty.frames) == (8, ())
    assert (third.owns_gil, third.active, third.name) == (False, None, None)


# --- text in other encodings and decorations ------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: t.replace("\n", "\r\n").encode("utf-8"),
        lambda t: t.encode("utf-16"),
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
        lambda t: re.sub(r"^(Thread \d+)", "\x1b[1;33m\\1\x1b[0m", t, flags=re.M).encode(),
    ],
    ids=["crlf", "utf-16", "utf-8-bom", "ansi-colours"],
)
def test_same_dump_in_other_encodings(tmp_path: Path, transform: Callable[[str], bytes]) -> None:
    """CRLF, UTF-16 (PowerShell's `>`), a BOM or terminal colours read as the plain file."""
    src = DUMPS / "pyspy-text-3.12.txt"
    f = tmp_path / "dump.txt"
    f.write_bytes(transform(src.read_text(encoding="utf-8")))
    assert load_dump(f) == load_dump(src)


def test_forced_format_that_does_not_match() -> None:
    """Parsing a py-spy dump as faulthandler output finds nothing and says so."""
    text = (DUMPS / "pyspy-text-3.12.txt").read_text(encoding="utf-8")
    with pytest.raises(BadDumpError, match="holds no stack samples") as info:
        parse_dump(text, name="x.txt", fmt=DumpFormat.FAULTHANDLER)
    _assert_one_sentence(info.value)


# --- bad input ------------------------------------------------------------------------


def _cut_after(path: Path, pattern: str, occurrence: int = 1) -> str:
    """The text of a real fixture up to and including the n-th line that matches."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    return "".join(lines[: hits[occurrence - 1] + 1])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty"),
        (b"  \n\t\n", "is empty"),
        (bytes(range(256)) * 8, "binary file"),
        (bytes(range(128, 256)) * 8, "binary file"),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "ELF binary or core file"),
        (b"hello, this is not a dump\nat all\n", "not a dump hangdoctor can read"),
        (
            b'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n'
            b"ZeroDivisionError: division by zero\n",
            "exception traceback",
        ),
        (b"[INFO] server started\n", "not a dump hangdoctor can read"),
    ],
    ids=["empty", "blank", "binary", "high-bytes", "elf", "text", "exception", "log"],
)
def test_bad_content(tmp_path: Path, content: bytes, needle: str) -> None:
    """Empty, binary and unrelated files: one sentence naming the file, and the remedy."""
    err, name = _bad(tmp_path, content)
    assert needle in err.message
    assert name in err.message
    _assert_one_sentence(err)


def test_gzip_compressed_dump(tmp_path: Path) -> None:
    """A gzipped dump is named as such, with the command that unpacks it."""
    data = gzip.compress((DUMPS / "pyspy-text-3.11.txt").read_bytes())
    err, name = _bad(tmp_path, data, name="dump.txt.gz")
    assert "gzip-compressed" in err.message
    assert f"gunzip {name}" in err.remedy


@pytest.mark.parametrize(
    ("fixture", "fraction", "needle"),
    [
        ("pyspy-json-3.11.json", 0.5, "ends in the middle of JSON value 2"),
        ("pyspy-json-locals-3.12.json", 0.1, "ends in the middle of JSON value 1"),
        ("capture-3.12.json", 0.7, "ends in the middle of JSON value 1"),
    ],
)
def test_truncated_json(tmp_path: Path, fixture: str, fraction: float, needle: str) -> None:
    """A JSON dump cut mid-way says it ends in the middle, not that it is invalid."""
    data = (DUMPS / fixture).read_bytes()
    err, _ = _bad(tmp_path, data[: int(len(data) * fraction)], name="dump.json")
    assert needle in err.message
    _assert_one_sentence(err)


def test_json_with_other_output_mixed_in(tmp_path: Path) -> None:
    """A complete JSON dump followed by a stray line is invalid JSON, with line and column."""
    data = (DUMPS / "pyspy-json-3.11.json").read_text(encoding="utf-8")
    err, _ = _bad(tmp_path, data + "Error: Failed to suspend process\n", name="dump.json")
    assert "is not valid JSON at line" in err.message
    _assert_one_sentence(err)


@pytest.mark.parametrize(
    ("fixture", "cut_at", "occurrence", "needle"),
    [
        ("pyspy-text-3.11.txt", r"^Thread \d+", 2, "which has no frames"),
        ("pyspy-text-3.11.txt", r"^Process \d+", 2, "lists no thread"),
        ("faulthandler-usr1-3.12.txt", r"^Current thread", 1, "which has no frames"),
        ("pystack-3.13.txt", r"^Traceback for thread", 2, "which has no frames"),
    ],
    ids=["pyspy-thread", "pyspy-process", "faulthandler", "pystack"],
)
def test_truncated_text(
    tmp_path: Path, fixture: str, cut_at: str, occurrence: int, needle: str
) -> None:
    """A text dump that stops right after a header is cut short, and says which header."""
    text = _cut_after(DUMPS / fixture, cut_at, occurrence)
    err, name = _bad(tmp_path, text)
    assert f"{name} ends in the middle of" in err.message
    assert needle in err.message
    _assert_one_sentence(err)


@pytest.mark.parametrize(
    "fixture", ["pyspy-text-3.11.txt", "faulthandler-later-3.13.txt", "pystack-3.11.txt"]
)
def test_text_cut_in_the_middle_of_a_line(tmp_path: Path, fixture: str) -> None:
    """A file that stops inside a frame line, without its newline, is cut short."""
    text = (DUMPS / fixture).read_text(encoding="utf-8")
    frame = re.search(r"^ +.*threading\.py", text, flags=re.M)
    assert frame is not None
    cut = text[: frame.end() - 6]  # stop inside the file name of a frame line
    err, _ = _bad(tmp_path, cut)
    assert "ends in the middle of its last line" in err.message


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist: not found."""
    with pytest.raises(BadDumpError, match="was not found") as info:
        load_dump(tmp_path / "missing.txt")
    _assert_one_sentence(info.value)


def test_path_through_a_file(tmp_path: Path) -> None:
    """A path whose parent is a file, not a directory: not found."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadDumpError, match="was not found"):
        load_dump(tmp_path / "file" / "dump.txt")


def test_directory(tmp_path: Path) -> None:
    """A directory: said to be a directory."""
    with pytest.raises(BadDumpError, match="is a directory") as info:
        load_dump(tmp_path)
    _assert_one_sentence(info.value)


def test_file_larger_than_the_limit(tmp_path: Path) -> None:
    """A file over 50 MB is refused before it is read (a sparse file: no disk used)."""
    f = tmp_path / "huge.txt"
    with f.open("wb") as fh:
        fh.truncate(MAX_DUMP_BYTES + 1)
    with pytest.raises(BadDumpError, match="more than the 50 MB") as info:
        load_dump(f)
    _assert_one_sentence(info.value)


def test_text_larger_than_the_limit() -> None:
    """parse_dump refuses text over the same limit."""
    with pytest.raises(BadDumpError, match="more than the 50 MB"):
        parse_dump("x" * (MAX_DUMP_BYTES + 1), name="stdin")


def _load_as_nobody(path: Path) -> str:
    """load_dump(path) in a forked child that dropped root; the error message it got."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                load_dump(path)
                msg = "read it"
            except BadDumpError as exc:
                msg = exc.message
            os.write(write_end, msg.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        out = os.read(read_end, 4096).decode() if ready else ""
    finally:
        os.close(read_end)
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)
    return out


def test_unreadable_file() -> None:
    """A file the user may not read: permission denied (as root, checked as user nobody)."""
    if os.geteuid() == 0 and threading.active_count() > 1:
        pytest.skip("running as root with other threads alive: cannot fork to drop privileges")
    with TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # the file can be reached and stat'ed, only not read
        f = Path(tmp) / "secret.txt"
        f.write_bytes((DUMPS / "pyspy-text-3.11.txt").read_bytes())
        f.chmod(0)
        if os.geteuid() != 0:
            with pytest.raises(BadDumpError) as info:
                load_dump(f)
            message = info.value.message
            _assert_one_sentence(info.value)
        else:  # root reads anything: drop to nobody in a child process
            message = _load_as_nobody(f)
        assert message == f"{f} cannot be read: permission denied."


# --- a dump cut at a line boundary --------------------------------------------------


@pytest.mark.parametrize(
    "fixture", sorted(p.name for p in DUMPS.glob("pyspy-text-*.txt")), ids=lambda n: n[11:-4]
)
def test_pyspy_text_cut_at_any_line_is_never_healthy(tmp_path: Path, fixture: str) -> None:
    """GIVEN a py-spy text dump cut after any of its lines WHEN it is read THEN either the
    cut is said (exit 2 material) or it fell between two whole threads, and it is never
    analysed as healthy: the missing part may be the thread that holds the loop."""
    lines = (DUMPS / fixture).read_text(encoding="utf-8").splitlines(keepends=True)
    whole = parse_dump("".join(lines), name="whole.txt")
    said = 0
    for k in range(1, len(lines)):
        try:
            snapshots = parse_dump("".join(lines[:k]), name="cut.txt")
        except BadDumpError as err:
            said += "looks cut off at line" in err.message
            continue
        # read as whole: every stack it has is the whole stack (a cut between threads, or
        # inside the locals of an outermost frame)
        last = snapshots[-1].threads[-1]
        full = next(t for t in whole[len(snapshots) - 1].threads if t.tid == last.tid)
        assert [f.function for f in last.frames] == [f.function for f in full.frames], k
        assert analyze(snapshots).verdict is not Verdict.HEALTHY, k
    assert said > len(lines) // 2  # most cuts stop inside a stack


def test_cut_stack_names_the_line_and_the_frame(tmp_path: Path) -> None:
    """A dump that stops inside the loop thread's stack says where and at which frame."""
    lines = (DUMPS / "pyspy-text-3.12.txt").read_text(encoding="utf-8").splitlines(True)
    cut = next(i for i, t in enumerate(lines, 1) if "Handle._run" in t)
    err, name = _bad(tmp_path, "".join(lines[:cut]))
    assert err.message.startswith(f"{name} looks cut off at line {cut}: the stack of `Thread")
    assert "stops at `Handle._run (asyncio/events.py:84)`" in err.message
    _assert_one_sentence(err)


def test_whole_stacks_of_unnamed_and_main_threads_are_not_cut() -> None:
    """A thread started outside `threading` (no name) may end in any frame, and a main
    thread run with `-m` ends in runpy: both are read as whole."""
    text = (
        "Process 7: python -m app\nPython v3.12.1 (/usr/bin/python3.12)\n\n"
        'Thread 7 (idle): "MainThread"\n'
        "    BaseEventLoop._run_once (asyncio/base_events.py:1971)\n"
        "    _run_module_as_main (<frozen runpy>:198)\n"
        "Thread 8 (idle)\n"
        "    callback (app/native.py:3)\n"
    )
    (snap,) = parse_dump(text, name="dump.txt")
    assert [len(t.frames) for t in snap.threads] == [2, 1]


# --- pipes and devices ---------------------------------------------------------------


def test_fifo_without_a_writer_ends_with_a_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named pipe nobody writes to is given up after PIPE_IDLE_S, never waited on forever
    (here in a thread with a join deadline, so a regression cannot hang the suite)."""
    import hangdoctor.capture.dumps as dumps

    monkeypatch.setattr(dumps, "PIPE_IDLE_S", 0.5, raising=False)
    fifo = tmp_path / "dump.fifo"
    os.mkfifo(fifo)
    errors: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(errors, lambda: load_dump(fifo)), daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():  # release the blocked open() so the thread can end
        with open(fifo, "wb"):
            pass
        pytest.fail("load_dump waited on a FIFO with no writer")
    (err,) = errors
    assert isinstance(err, BadDumpError) and "Nothing was written to" in err.message
    _assert_one_sentence(err)


def _catch(into: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as exc:  # handed to the test thread to assert on
        into.append(exc)
