"""The diagnosis as a person in an outage reads it: verdict, cause, line, wait, fix.

Renderers only read the model and the catalog; every decision (blocked or not,
which rule, which line) was made by the analysis. The one judgement made here
is presentational: which stack frames are worth a person's attention. Library
frames that merely carry the call (the server, the framework, asyncio) are
folded into one dim line; the user's frame and what it called stay visible.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule as RichRule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from hangdoctor.analysis.frames import (
    FRAMEWORK_PACKAGES,
    display_path,
)
from hangdoctor.analysis.tasks import age
from hangdoctor.catalog import Rule, get_rule
from hangdoctor.errors import UnknownRuleError
from hangdoctor.model import (
    Diagnosis,
    Finding,
    Holder,
    LoopReport,
    LoopState,
    Verdict,
    WaitsOn,
    WaitTarget,
)
from hangdoctor.report.prose import CODE_STYLE, prose
from hangdoctor.report.stack_fold import FoldedRun, fold_plan

__all__ = ["code_block", "render_terminal"]

# Stdlib packages that only run the loop; folded like the framework packages.
_LOOP_MACHINERY = frozenset({"asyncio", "runpy", "selectors"})
_FOLD_PACKAGES = FRAMEWORK_PACKAGES | _LOOP_MACHINERY

_VERDICT_BADGE = {
    Verdict.HEALTHY: "bold black on green",
    Verdict.BUSY: "bold black on yellow",
    Verdict.STARVED: "bold black on yellow",
    Verdict.STUCK: "bold white on magenta",
    Verdict.BLOCKED: "bold white on red",
}
_VERDICT_COLOR = {
    Verdict.HEALTHY: "green",
    Verdict.BUSY: "yellow",
    Verdict.STARVED: "yellow",
    Verdict.STUCK: "magenta",
    Verdict.BLOCKED: "red",
}
_VERDICT_HEADLINE = {
    Verdict.HEALTHY: "every event loop is answering",
    Verdict.BUSY: "an event loop is busy with CPU work; its requests wait",
    Verdict.STARVED: "the worker threads are all taken; sync routes queue",
    Verdict.STUCK: "the loop answers, but requests wait on one another and never finish",
    Verdict.BLOCKED: "an event loop is blocked; every request to it waits",
}
_STATE_STYLE = {
    LoopState.IDLE: "green",
    LoopState.BUSY: "yellow",
    LoopState.STARVED: "yellow",
    LoopState.STUCK: "bold magenta",
    LoopState.BLOCKED: "bold red",
}
_LABEL = "bold"
_DIM = "dim"
_LOCATION = "cyan"
_INDENT = 2
_ALIGN_FRAMES_FROM = 110  # at least this wide: file:line in a column of its own


def code_block(code: str, *, start_line: int | None = None) -> Text:
    """Python source, highlighted with the terminal's own palette; line numbers when given.

    One source line is one screen line: a line wider than the space left ends
    in "…" rather than wrapping, since a statement broken over two lines reads
    as two statements. (Inside a Group, Padding or table: `Console.print` joins
    bare `Text` arguments into one, which drops `no_wrap`.)
    """
    code = code.rstrip("\n").expandtabs(4)
    syntax = Syntax(code, "python", theme="ansi_dark", background_color="default")
    out = syntax.highlight(code)
    out.rstrip()  # highlight() ends the text with a newline of its own
    if start_line is not None:
        lines = out.split("\n", allow_blank=True)
        digits = len(str(start_line + len(lines) - 1))
        out = Text("\n").join(
            Text(f"{n:>{digits}}  ", style=_DIM) + line for n, line in enumerate(lines, start_line)
        )
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


def render_terminal(
    diagnosis: Diagnosis, *, width: int | None = None, show_all_frames: bool = False
) -> RenderableType:
    """The whole diagnosis for a terminal: verdict, each finding with its fix, healthy loops, notes.

    `width` is the console width: wide consoles get stack locations in a column
    of their own, narrow ones move a location that does not fit below its
    function (None lays out as wide). `show_all_frames` turns off the folding of
    library frames.
    """
    parts: list[RenderableType] = [_verdict(diagnosis), Text()]
    explained: set[str] = set()
    for finding in diagnosis.findings:
        # several tasks stuck the same way: why and how to fix it are said once
        parts.append(
            _finding(
                finding,
                diagnosis,
                width=width,
                show_all_frames=show_all_frames,
                explain=finding.code not in explained,
            )
        )
        explained.add(finding.code)
    reported = {(f.pid, f.tid) for f in diagnosis.findings}
    others = [lp for lp in diagnosis.loops if (lp.pid, lp.tid) not in reported]
    if others:
        if diagnosis.findings:
            parts.append(Text("Other event loops", style=_LABEL))
        parts.append(Padding(Group(*(_loop_line(lp) for lp in others)), (0, 0, 1, _INDENT)))
    for note in diagnosis.notes:
        line = Text("note: ", style="bold yellow")
        line.append_text(prose(note))
        parts.append(line)
    if diagnosis.notes:
        parts.append(Text())
    return Group(*parts)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value:.2f} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _verdict(diagnosis: Diagnosis) -> Text:
    verdict = diagnosis.verdict
    line = Text()
    line.append(f" {verdict.value.upper()} ", style=_VERDICT_BADGE[verdict])
    line.append("  ")
    if diagnosis.loops:
        line.append(_VERDICT_HEADLINE[verdict], style=f"bold {_VERDICT_COLOR[verdict]}")
    else:
        line.append("no event loop found", style="bold yellow")
    facts: list[str] = []
    if diagnosis.loops:
        counts: dict[LoopState, int] = {}
        for lp in diagnosis.loops:
            counts[lp.state] = counts.get(lp.state, 0) + 1
        order = (
            LoopState.BLOCKED,
            LoopState.STUCK,
            LoopState.BUSY,
            LoopState.STARVED,
            LoopState.IDLE,
        )
        states = ", ".join(f"{counts[s]} {s.value}" for s in order if s in counts)
        facts.append(f"{_plural(len(diagnosis.loops), 'event loop')}: {states}")
    if diagnosis.pids:
        label = "pid" if len(diagnosis.pids) == 1 else "pids"
        facts.append(f"{label} {', '.join(str(p) for p in diagnosis.pids)}")
    if diagnosis.samples:
        sampled = _plural(diagnosis.samples, "sample")
        if diagnosis.sampled_for_s > 0:
            sampled += f" over {_seconds(diagnosis.sampled_for_s)}"
        facts.append(sampled)
    if facts:
        line.append("\n")
        line.append(" · ".join(facts), style=_DIM)
    return line


def _rule_or_none(code: str) -> Rule | None:
    try:
        return get_rule(code)
    except UnknownRuleError:
        return None  # a report written by a newer hangdoctor: show what it says


def _loop_of(finding: Finding, diagnosis: Diagnosis) -> LoopReport | None:
    return next(
        (lp for lp in diagnosis.loops if lp.pid == finding.pid and lp.tid == finding.tid),
        None,
    )


def _finding(
    finding: Finding,
    diagnosis: Diagnosis,
    *,
    width: int | None,
    show_all_frames: bool,
    explain: bool = True,
) -> RenderableType:
    rule = _rule_or_none(finding.code)
    title = Text()
    title.append(finding.code, style=_STATE_STYLE.get(finding.state, "") if finding.state else "")
    if rule is not None:
        title.append(f" {rule.name}")
    title.stylize("bold")
    parts: list[RenderableType] = [RichRule(title, align="left", style=_DIM)]
    if rule is not None:
        parts.append(prose(rule.summary, style="bold"))
    parts.append(prose(finding.message))
    parts.append(Text())
    parts.append(Padding(_facts(finding, _loop_of(finding, diagnosis)), (0, 0, 1, _INDENT)))
    if rule is not None and explain:
        parts.append(_section("Why it hangs", prose(rule.why)))
    if finding.stack:
        parts.append(_section(_stack_title(finding), _stack(finding, width, show_all_frames)))
    user_locals = _user_locals(finding, redacted=diagnosis.secrets_redacted)
    if user_locals is not None:
        parts.append(user_locals)
    if rule is not None and explain:
        fix: list[RenderableType] = [prose(rule.fix)]
        if rule.good:
            fix.extend([Text(), code_block(rule.good)])
        parts.append(_section("Fix", Group(*fix)))
    hint = Text("Full entry: " if explain else "Why and how to fix it: above, and ", style=_DIM)
    hint.append(f"hangdoctor explain {finding.code}", style=CODE_STYLE)
    parts.extend([hint, Text()])
    return Group(*parts)


def _user_locals(finding: Finding, *, redacted: bool) -> RenderableType | None:
    """The user frame's locals (present only when the user asked for them with --locals)."""
    if finding.user_frame_index is None or not 0 <= finding.user_frame_index < len(finding.stack):
        return None
    frame = finding.stack[finding.user_frame_index]
    if not frame.locals:
        return None
    table = Table.grid(padding=(0, 2))
    table.add_column(style=CODE_STYLE, no_wrap=True)
    table.add_column(overflow="fold")
    for local in frame.locals:
        shown = local.repr if local.repr is not None else "?"
        table.add_row(local.name + (" (arg)" if local.is_arg else ""), Text(shown))
    how = "secrets redacted" if redacted else "not redacted: --show-secrets"
    return _section(f"Locals of {frame.function} ({how})", table)


def _section(title: str, body: RenderableType) -> RenderableType:
    return Group(Text(title, style=_LABEL), Padding(body, (0, 0, 1, _INDENT)))


def _location(file: str, line: int | None, col: int | None = None, cwd: str | None = None) -> str:
    where = display_path(file, cwd)
    if line:
        where += f":{line}"
        if col is not None:
            where += f":{col}"
    return where


def _duration(finding: Finding, loop: LoopReport | None) -> Text:
    state = finding.state
    style = _STATE_STYLE.get(state, "") if state else ""
    secs = finding.blocked_for_s
    if state is LoopState.STUCK:
        if finding.cycle:
            return Text("loop answers; these tasks wait on each other for ever", style=style)
        waited = finding.waiting_s
        how_long = f" for {age(waited)}" if waited else ""
        return Text(f"loop answers; the task has waited{how_long}", style=style)
    if state is LoopState.STARVED:
        text = "loop idle, but no worker thread is free"
        if loop is not None and loop.busy_workers is not None:
            text = f"loop idle, but {loop.busy_workers} of {loop.total_workers} worker threads busy"
        return Text(text, style=style)
    word = "busy (CPU)" if state is LoopState.BUSY else "blocked"
    if secs is not None and secs > 0:
        return Text(f"{word} for at least {_seconds(secs)}", style=style)
    return Text(f"{word}; duration unknown (one sample, or no clock in the dump)", style=style)


def _facts(finding: Finding, loop: LoopReport | None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=_LABEL, no_wrap=True)
    grid.add_column()
    if finding.pid is not None or finding.thread or finding.tid:
        who = Text()
        if finding.pid is not None:
            who.append(f"pid {finding.pid} ")
        who.append(finding.thread or "thread")
        if finding.tid:
            who.append(f" (tid {finding.tid})", style=_DIM)
        if loop is not None:
            who.append(f", {loop.kind.value}", style=_DIM)
        grid.add_row("loop", who)
    if finding.state is not None:
        grid.add_row("state", _duration(finding, loop))
    grid.add_row(
        "where",
        _place(
            finding.file, finding.line, finding.function, finding.source, finding.col, finding.cwd
        ),
    )
    if finding.chain:
        grid.add_row("via", Text(" → ".join(finding.chain)))
    if finding.waits_for is not None:
        grid.add_row("waits for", _wait(finding.waits_for, finding.cwd))
    if finding.task is not None:
        grid.add_row("task", _task_line(finding))
    if finding.waits_on is not None:
        grid.add_row("waits on", _waits_on(finding.waits_on))
    if finding.holders:
        label = "cycle" if finding.cycle else "held by"
        grid.add_row(label, Group(*(_holder(h, finding.cwd) for h in finding.holders)))
    return grid


def _task_line(finding: Finding) -> Text:
    line = Text(f"`{finding.task}`", style=CODE_STYLE)
    req = finding.request
    if req is not None:
        line.append(f"  {req.method} {req.route or req.path}")
        if req.disconnected:
            line.append(" (client gone)", style="bold")
    if finding.waiting_s is not None:
        line.append(f"  [{age(finding.waiting_s)}]", style=_DIM)
    if finding.tasks_waiting and finding.tasks_waiting > 1:
        line.append(f"  + {finding.tasks_waiting - 1} more waiting the same", style=_DIM)
    return line


def _waits_on(waits: WaitsOn) -> Text:
    text = prose(waits.describe())
    if waits.capacity is not None:
        used = "?" if waits.in_use is None else str(waits.in_use)
        text.append(f"  {used} of {waits.capacity} in use", style=_DIM)
    if waits.waiters:
        text.append(f", {waits.waiters} waiting", style=_DIM)
    if waits.detail:
        text.append("\n")
        text.append_text(prose(waits.detail))
    return text


def _holder(holder: Holder, cwd: str | None) -> Text:
    line = Text(f"`{holder.task}`", style=CODE_STYLE)
    if holder.file:
        line.append(" took it at ", style=_DIM)
        line.append(_location(holder.file, holder.line, cwd=cwd), style=_LOCATION)
        if holder.function:
            line.append(f" in {holder.function}", style=_DIM)
    if holder.waits_on is not None or holder.waits_at:
        line.append("; now waits", style=_DIM)
        if holder.waits_on is not None:
            line.append(" on ")
            line.append_text(prose(holder.waits_on.describe()))
        if holder.waits_at:
            line.append(" at ", style=_DIM)
            line.append(holder.waits_at, style=_LOCATION)
    if holder.since_s is not None:
        line.append(f"  [{age(holder.since_s)}]", style=_DIM)
    if not holder.alive:
        line.append(" (ended", style="bold")
        line.append(f": {holder.exception})" if holder.exception else ")", style="bold")
    return line


def _place(
    file: str,
    line: int | None,
    function: str | None,
    source: str | None,
    col: int | None = None,
    cwd: str | None = None,
) -> RenderableType:
    head = Text(_location(file, line, col, cwd), style=_LOCATION)
    if function:
        head.append(" in ", style=_DIM)
        head.append(function)
    if not source:
        return head
    return Group(head, code_block(source, start_line=line if line else None))


def _wait(target: WaitTarget, cwd: str | None = None) -> RenderableType:
    if target.thread_name is None and target.tid is None and target.file is None:
        return prose(target.description)
    head = Text()
    if target.thread_name is not None or target.tid is not None:
        head.append(f"thread {target.thread_name or '?'}")
        if target.tid:
            head.append(f" (tid {target.tid})", style=_DIM)
    else:
        head = prose(target.description)
    if target.file is None:
        return head
    place = _place(target.file, target.line, target.function, target.source, cwd=cwd)
    return Group(head, place)


def _stack_title(finding: Finding) -> str:
    if finding.task is not None:
        return f"Await chain of task `{finding.task}`, innermost first"
    if finding.state is LoopState.STARVED:
        return "Stack of one busy worker thread, innermost first"
    return f"Stack of {finding.thread or 'the loop thread'}, innermost first"


def _stack(finding: Finding, width: int | None, show_all: bool) -> RenderableType:
    user = finding.user_frame_index
    plan = fold_plan(finding.stack, user, _FOLD_PACKAGES, show_all=show_all)
    shown = [item for item in plan if not isinstance(item, FoldedRun)]
    align = width is None or width >= _ALIGN_FRAMES_FROM
    name_width = min(max((len(f.function) for _, f in shown), default=0), 48) if align else 0
    lines: list[Text] = []
    for item in plan:
        if isinstance(item, FoldedRun):
            only = all(p in _FOLD_PACKAGES for p in item.packages)
            kind = "framework" if only else "library"
            count = len(item.frames)
            lines.append(
                Text(f"  … {count} {kind} frames ({', '.join(item.packages)})", style=_DIM)
            )
            continue
        i, frame = item
        mine = i == user
        line = Text()
        line.append("▶ " if mine else "  ", style="bold magenta")
        line.append(frame.function.ljust(name_width), style="bold" if mine else "")
        where = _location(frame.file or frame.short_file or "?", frame.line, cwd=finding.cwd)
        location = Text(where if align else f"({where})", style=_LOCATION if mine else _DIM)
        if mine:
            location.append("  ← your code", style="bold magenta")
        if width is not None and len(line) + len(location) + 2 > width - _INDENT:
            # too long for one line: the location goes below, so the names stay aligned
            lines.extend([line, Text("    ").append_text(location)])
        else:
            lines.append(line.append("  " if align else " ").append_text(location))
    return Group(*lines)


def _loop_line(loop: LoopReport) -> Text:
    line = Text(f"pid {loop.pid} {loop.thread or 'thread'}", style="")
    line.append(f" (tid {loop.tid})", style=_DIM)
    line.append(": ")
    line.append(loop.state.value, style=_STATE_STYLE[loop.state])
    line.append(f" ({loop.kind.value})", style=_DIM)
    return line
