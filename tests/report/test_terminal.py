"""The terminal report: what an engineer reads during an outage, rendered as plain text."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console, Group
from rich.text import Text

from hangdoctor.catalog import get_rule
from hangdoctor.model import Diagnosis, LoopState, Verdict
from hangdoctor.report.console import TrimmedConsole
from hangdoctor.report.terminal import code_block, render_terminal
from tests.report.conftest import OUTER, OUTER_PACKAGES, with_user_locals

WIDTHS = (80, 200)
ROOT = Path(__file__).resolve().parents[2]


def render(diagnosis: Diagnosis, width: int, *, show_all_frames: bool = False) -> str:
    """The report as the CLI prints it (through the console that drops line-end padding)."""
    console = TrimmedConsole(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(render_terminal(diagnosis, width=width, show_all_frames=show_all_frames), end="")
    return console.export_text()


def code_line_shown(line: str, text: str) -> bool:
    """A source line is on one screen line: whole, or its start and "…" (never wrapped)."""
    want = line.strip()
    if not want:
        return True
    for shown in text.splitlines():
        if want in shown:
            return True
        cut = shown.strip()
        body = re.sub(r"^\d+  ", "", cut[:-1])  # the code after its line number, if any
        if cut.endswith("…") and body and want.startswith(body):
            return True
    return False


def flat(text: str) -> str:
    """Whitespace collapsed, so a phrase wrapped at 80 columns still matches."""
    return " ".join(text.split())


def stack_lines(text: str) -> list[str]:
    """The lines of the (first) stack section, stripped."""
    section = text.split("innermost first", 1)[1].split("\nFix", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip()]


@pytest.mark.parametrize("width", WIDTHS)
def test_blocked_shows_cause_place_wait_and_fix(blocked: Diagnosis, width: int) -> None:
    """HD101: verdict, code, name, line and its source, the worker waited for, why and the fix."""
    text = render(blocked, width)
    words = flat(text)
    rule = get_rule("HD101")
    assert text.lstrip().startswith("BLOCKED")
    assert "pids 3731, 3740" in words and "3 samples over 2.0 s" in words
    assert "2 event loops: 1 blocked, 1 idle" in words
    assert "HD101 executor-shutdown-on-loop" in words
    assert flat(rule.summary) in words
    assert flat(blocked.findings[0].message) in words
    assert "blocked for at least 2.0 s" in words
    assert "/srv/app/api/routes/stream.py:35 in news_stream.<locals>.gen" in words
    assert "35 with ThreadPoolExecutor(max_workers=2) as ex:" in words
    assert "waits for thread ThreadPoolExecutor-0_0 (tid 3736)" in words
    assert "/srv/app/api/routes/stream.py:25 in fetch_news" in words
    assert "25 time.sleep(delay) # the slow upstream call" in words
    assert "Why it hangs" in text and flat(rule.why) in words
    assert "Fix" in text and flat(rule.fix) in words
    assert all(code_line_shown(line, text) for line in rule.good.splitlines()), text
    assert "hangdoctor explain HD101" in words


@pytest.mark.parametrize("width", WIDTHS)
def test_framework_frames_are_folded_and_counted(blocked: Diagnosis, width: int) -> None:
    """The 17 frames outer to the user's are one counted line; the user's frame is marked."""
    text = render(blocked, width)
    words = flat(text)
    assert f"… {len(OUTER)} framework frames ({', '.join(OUTER_PACKAGES)})" in words
    shown = stack_lines(text)
    assert [line.split()[0] for line in shown[:4]] == [
        "Thread._wait_for_tstate_lock",
        "Thread.join",
        "ThreadPoolExecutor.shutdown",
        "Executor.__exit__",
    ]
    assert len(shown) == 6 and shown[5].startswith("…"), shown
    assert "Stack of MainThread, innermost first" in text
    marked = [line for line in text.splitlines() if "▶" in line]
    assert len(marked) == 1 and "news_stream.<locals>.gen" in marked[0]
    assert "stream.py:38" in words.split("▶", 1)[1].split("←", 1)[0]
    assert "← your code" in words
    order = [words.index(f) for f in ("Thread._wait_for_tstate_lock", "Thread.join", "▶", "…")]
    assert order == sorted(order), "innermost frame first, the fold after the user's frame"


def test_show_all_frames_folds_nothing(blocked: Diagnosis) -> None:
    """With show_all_frames every frame is listed, in order, and nothing is folded."""
    text = render(blocked, 200, show_all_frames=True)
    assert "framework frames" not in text and "…" not in text
    names = [line.removeprefix("▶ ").split()[0] for line in stack_lines(text)]
    assert names == [frame.function for frame in blocked.findings[0].stack]


def test_what_the_user_called_and_the_innermost_frame_stay(http_blocked: Diagnosis) -> None:
    """Inner to the user's frame only the library's middle is folded: its entry and leaf stay."""
    words = flat(render(http_blocked, 120))
    assert "SocketIO.readinto" in words  # where the thread actually waits
    assert "HTTPResponse._read_status" in words  # stdlib, not framework: shown
    assert "get requests/api.py:73" in words  # what the user called
    assert "… 6 framework frames (urllib3, requests)" in words
    assert "Session.send" not in words
    assert f"… {len(OUTER) - 2} framework frames" in words


def test_unknown_duration_and_notes(http_blocked: Diagnosis) -> None:
    """One sample: the duration is said to be unknown, and the note is shown."""
    words = flat(render(http_blocked, 80))
    assert "duration unknown" in words
    assert "note: Only one sample per process" in words
    assert "pid 51 · 1 sample" in words and "1 sample over" not in words


@pytest.mark.parametrize("width", WIDTHS)
def test_busy(busy: Diagnosis, width: int) -> None:
    """HD501: BUSY verdict, the CPU-bound line, and how long the loop was busy."""
    words = flat(render(busy, width))
    assert words.startswith("BUSY")
    assert "HD501 cpu-bound-on-loop" in words
    assert "busy (CPU) for at least 2.5 s" in words
    assert "112 for i, word in enumerate(words):" in words
    assert "pid 77 MainThread (tid 77), uvloop" in words
    assert "hangdoctor explain HD501" in words


@pytest.mark.parametrize("width", WIDTHS)
def test_starved(starved: Diagnosis, width: int) -> None:
    """HD401: STARVED verdict, the worker counts, what the loop waits for, a worker's stack."""
    words = flat(render(starved, width))
    assert words.startswith("STARVED")
    assert "HD401 worker-thread-starvation" in words
    assert "loop idle, but 40 of 40 worker threads busy" in words
    assert "waits for a free AnyIO worker thread (40 of 40 busy, limit 40)" in words
    assert "Stack of one busy worker thread, innermost first" in words
    assert "136 time.sleep(seconds)" in words


@pytest.mark.parametrize("width", WIDTHS)
def test_healthy_loops_one_line_each_and_notes(healthy: Diagnosis, width: int) -> None:
    """Healthy: a green verdict, one line per loop, the notes; no cause, no fix."""
    text = render(healthy, width)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0].startswith("HEALTHY")
    assert "pid 123 MainThread (tid 123): idle (asyncio)" in lines
    assert "pid 124 MainThread (tid 124): idle (uvloop)" in lines
    assert flat("note: " + healthy.notes[0]) in flat(text)
    assert "Fix" not in text and "HD" not in text


def test_other_loops_listed_after_findings(blocked: Diagnosis) -> None:
    """With a finding, the healthy worker still gets its one line, after the finding."""
    text = render(blocked, 100)
    assert "Other event loops" in text
    assert text.index("pid 3740 MainThread (tid 3740): idle (asyncio)") > text.index("HD101")
    assert "pid 3731 MainThread (tid 3731): blocked" not in text


def test_no_loop_found() -> None:
    """No event loop at all: the headline says so instead of claiming health."""
    diagnosis = Diagnosis(
        Verdict.HEALTHY, (), (), pids=(5,), samples=1, notes=("pid 5 runs no event loop.",)
    )
    words = flat(render(diagnosis, 80))
    assert "no event loop found" in words and "every event loop is answering" not in words
    assert "note: pid 5 runs no event loop." in words


def test_unknown_code_still_renders(blocked: Diagnosis) -> None:
    """A report from a newer catalog (unknown code) shows its code and message, no crash."""
    finding = replace(blocked.findings[0], code="HD999")
    words = flat(render(replace(blocked, findings=(finding,)), 80))
    assert "HD999" in words and flat(finding.message) in words
    assert "executor-shutdown-on-loop" not in words


@pytest.mark.parametrize("width", WIDTHS)
def test_lines_fit_the_width(
    blocked: Diagnosis, busy: Diagnosis, starved: Diagnosis, width: int
) -> None:
    """No rendered line is wider than the console."""
    for diagnosis in (blocked, busy, starved):
        for line in render(diagnosis, width).splitlines():
            assert len(line.rstrip()) <= width, line


def test_long_frame_location_goes_below_at_80(blocked: Diagnosis) -> None:
    """At 80 columns a frame too long for one line puts its location on the next line."""
    finding = blocked.findings[0]
    long_name = "news_stream.<locals>.gen.<locals>.produce_one_event_for_the_client"
    stack = list(finding.stack)
    stack[4] = replace(stack[4], function=long_name)
    changed = replace(blocked, findings=(replace(finding, stack=tuple(stack)),))
    lines = render(changed, 80).splitlines()
    i = next(n for n, line in enumerate(lines) if "▶" in line)
    assert lines[i].strip() == f"▶ {long_name}"
    assert lines[i + 1].strip() == "(/srv/app/api/routes/stream.py:38)  ← your code"


GOLDEN = sorted((ROOT / "tests" / "data" / "golden").glob("*/*.json"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_real_captures_render(path: Path) -> None:
    """Every golden capture from a real process renders at 80 columns with its code and line."""
    from hangdoctor.analysis import analyze
    from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json

    data = json.loads(path.read_text(encoding="utf-8"))
    processes = data.get("processes") or {str(data.get("pid", 0)): data["samples"]}
    snaps = [
        snapshot_from_pyspy_json(s["pyspy"], pid=int(pid), taken_at=s["taken_at"])
        for pid, samples in processes.items()
        for s in samples
    ]
    diagnosis = analyze(snaps, source_root=str(ROOT / "examples" / "newsroom"))
    words = flat(render(diagnosis, 80))
    assert words.startswith(diagnosis.verdict.value.upper())
    for finding in diagnosis.findings:
        assert finding.code in words
        assert f":{finding.line} in {finding.function}" in words
        if finding.source:
            assert flat(finding.source) in words
        if finding.state is LoopState.BLOCKED and finding.stack:
            assert "← your code" in words or finding.user_frame_index is None


FIXTURES = ("blocked", "http_blocked", "busy", "starved", "healthy")


@pytest.mark.parametrize("width", (60, 80, 200))
@pytest.mark.parametrize("name", FIXTURES)
def test_no_line_ends_in_padding(name: str, width: int, request: pytest.FixtureRequest) -> None:
    """Printed as the CLI prints it, no line of any report ends in blanks (rich pads to the
    width: 46 of the 57 lines of `explain HD101` at 200 columns did)."""
    text = render(request.getfixturevalue(name), width)
    padded = [line for line in text.splitlines() if line != line.rstrip()]
    assert padded == [], padded[:5]


def test_a_plain_console_pads_what_the_report_console_does_not(blocked: Diagnosis) -> None:
    """The padding comes from rich itself: the same report through a plain Console has it."""
    console = Console(record=True, width=200, color_system=None, file=io.StringIO())
    console.print(render_terminal(blocked, width=200), end="")
    assert any(line != line.rstrip() for line in console.export_text().splitlines())


def _long_source(blocked: Diagnosis) -> tuple[Diagnosis, str]:
    source = (
        "with ThreadPoolExecutor(max_workers=2, thread_name_prefix='news-upstream-fetch') as ex:"
    )
    finding = replace(blocked.findings[0], source=source)
    return replace(blocked, findings=(finding,)), source


@pytest.mark.parametrize("width", (60, 80))
def test_a_long_source_line_is_cut_with_an_ellipsis_not_wrapped(
    blocked: Diagnosis, width: int
) -> None:
    """The finding's source line wider than the space left ends in "…" on its one line; the
    rest of the statement does not spill onto the next line."""
    diagnosis, source = _long_source(blocked)
    lines = render(diagnosis, width).splitlines()
    i = next(n for n, line in enumerate(lines) if "35  with ThreadPoolExecutor(" in line)
    shown = lines[i].split("35  ", 1)[1]
    assert shown.endswith("…") and source.startswith(shown[:-1]), lines[i]
    assert len(lines[i]) <= width
    tail = source[len(shown) - 1 :]
    assert tail not in lines[i + 1], lines[i + 1]


def test_a_long_source_line_is_whole_when_it_fits(blocked: Diagnosis) -> None:
    """At 200 columns the same line is shown whole."""
    diagnosis, source = _long_source(blocked)
    assert f"35  {source}" in render(diagnosis, 200)


def test_code_block_crops_each_line_and_numbers_them() -> None:
    """`code_block` numbers lines from `start_line` and keeps each source line on one line."""
    block = code_block("x = 1\n" + "y = " + "1 + " * 40 + "1\n", start_line=9)
    assert isinstance(block, Text) and block.no_wrap and block.overflow == "ellipsis"
    console = TrimmedConsole(record=True, width=40, color_system=None, file=io.StringIO())
    console.print(Group(block))  # print() joins bare Text objects, losing no_wrap
    second = "10  y = " + "1 + " * 40 + "1"
    assert console.export_text().splitlines() == [" 9  x = 1", second[:39] + "…"]


@pytest.mark.parametrize(
    ("redacted", "heading"),
    [(True, "(secrets redacted)"), (False, "(not redacted: --show-secrets)")],
)
def test_locals_heading_says_what_is_true(blocked: Diagnosis, redacted: bool, heading: str) -> None:
    """The locals are headed "secrets redacted" only when they were; with --show-secrets the
    heading says they are not."""
    text = render(with_user_locals(blocked, redacted=redacted), 120)
    title = next(line for line in text.splitlines() if line.startswith("Locals of "))
    assert title == f"Locals of news_stream.<locals>.gen {heading}"
