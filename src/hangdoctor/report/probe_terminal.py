"""A probe in the terminal: live progress while it runs, the summary and verdict at the end.

Progress goes to stderr: a rich progress bar on a terminal, and on anything
else (a CI log) one plain line every few seconds, so logs stay short. The
summary reads only the finished `ProbeResult`; the diagnosis caught in the act
is drawn by the diagnosis renderer, as `diagnose` draws it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from hangdoctor.probe.engine import ProbeProgress
from hangdoctor.probe.timeline import BASELINE_FLOOR_S, ProbeResult, ProbeVerdict

__all__ = [
    "LiveProgress",
    "format_seconds",
    "render_summary",
    "slowdown_text",
    "verdict_reasons",
]

_PLAIN_EVERY_S = 5.0
_MAX_STALLS_SHOWN = 5
_MAX_RECORDS_SHOWN = 20


def format_seconds(value: float | None) -> str:
    """A latency for people: `4 ms`, `120 ms`, `2.01 s`; `-` when there is none."""
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _progress_text(p: ProbeProgress, *, markup: bool) -> str:
    parts = [
        f"health {p.health_requests}",
        f"p99 {format_seconds(p.p99_s)}",
        f"timeouts {p.timeouts}",
        f"streams open {p.streams_open}",
        f"aborted {p.streams_aborted}",
        f"failed {p.streams_failed}",
    ]
    if p.requests:
        parts.append(f"requests {p.requests}, no answer {p.request_timeouts}")
    if p.stalled:
        parts.append("[bold red]STALL[/]" if markup else "STALL")
    if p.capturing:
        parts.append("[bold yellow]capturing stacks[/]" if markup else "capturing stacks")
    elif p.captures:
        parts.append(f"captured {p.captures}")
    return " · ".join(parts) if markup else ", ".join(parts)


class _SecondsColumn(ProgressColumn):
    """`  3/20 s` of the run; the task has no total until the first progress report."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("   -/- s")
        return Text(f"{task.completed:>4.0f}/{task.total:.0f} s")


class LiveProgress:
    """The `on_progress` callback of a probe, drawing to `console` (stderr)."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._tty = console.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last_plain = 0.0

    def __enter__(self) -> LiveProgress:
        if self._enabled and self._tty:
            self._bar = Progress(
                TextColumn("[bold]probe[/]"),
                BarColumn(bar_width=24),
                _SecondsColumn(),
                TextColumn("{task.fields[stats]}"),
                console=self._console,
                transient=True,
                refresh_per_second=4,  # the refresh thread shares the GIL with the probe
            )
            self._bar.start()
            self._task = self._bar.add_task("probe", total=None, stats="connecting")
        return self

    def __call__(self, p: ProbeProgress) -> None:
        if not self._enabled:
            return
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                total=p.duration_s,
                completed=min(p.t, p.duration_s),
                stats=_progress_text(p, markup=True),
            )
            return
        if p.done or p.t - self._last_plain < _PLAIN_EVERY_S:
            return
        self._last_plain = p.t
        self._console.print(
            f"probe {p.t:4.0f}/{p.duration_s:.0f} s: {_progress_text(p, markup=False)}",
            markup=False,
            highlight=False,
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _baseline_ref(result: ProbeResult) -> str:
    """The baseline a slowdown is measured against, with the floor when it applied."""
    base = result.summary.baseline_p99_s
    if base is not None and base < BASELINE_FLOOR_S:
        return (
            f"the baseline p99 ({format_seconds(base)}, counted as "
            f"{format_seconds(BASELINE_FLOOR_S)})"
        )
    return f"the baseline p99 {format_seconds(base)}"


def slowdown_text(result: ProbeResult) -> str | None:
    """`p99 340 ms is 34 times the baseline p99 10 ms ...` when over --max-slowdown."""
    s, c = result.summary, result.config
    if s.slowdown is None or s.slowdown <= c.max_slowdown:
        return None
    if s.timeouts or (s.p99_s is not None and s.p99_s >= c.p99_threshold_s):
        return None  # already over the threshold: a ratio to the baseline adds nothing
    return (
        f"p99 {format_seconds(s.p99_s)} is {s.slowdown:.0f} times {_baseline_ref(result)} "
        f"measured before the streams started (limit {c.max_slowdown:g} times, --max-slowdown)"
    )


def verdict_reasons(result: ProbeResult) -> list[str]:
    """Why the run passed or failed, in the terms of the thresholds."""
    s, c = result.summary, result.config
    reasons: list[str] = []
    if s.timeouts:
        reasons.append(
            f"{s.timeouts} of {s.requests} health requests timed out "
            f"(deadline {format_seconds(c.health_timeout_s)})"
        )
    if s.requests - s.timeouts - s.errors == 0:
        reasons.append("no health request was answered")
    elif s.p99_s is not None and s.p99_s >= c.p99_threshold_s:
        reasons.append(
            f"p99 {format_seconds(s.p99_s)} is over the {format_seconds(c.p99_threshold_s)} "
            "threshold"
        )
    slower = slowdown_text(result)
    if slower:
        reasons.append(slower)
    if result.resources is not None:  # threads or fds that grew with the drops (resources.py)
        reasons += [growth.message for growth in result.resources.growth]
    # --request paths whose requests got no answer in time; stuck on a healthy loop, or not
    reasons += [r.message for r in result.request_stats if r.message]
    if not reasons:
        text = (
            f"no health request timed out and p99 {format_seconds(s.p99_s)} is under "
            f"{format_seconds(c.p99_threshold_s)}"
        )
        if s.slowdown is not None:
            text += (
                f", {s.slowdown:.1f} times {_baseline_ref(result)} (limit {c.max_slowdown:g} times)"
            )
        reasons.append(text)
        if result.request_stats:
            reasons.append(f"every request was answered within {c.request_timeout_s:g} s")
    return reasons


def _header(result: ProbeResult) -> Text:
    c = result.config
    what = (
        f"{c.clients} stream clients on {', '.join(c.streams)}, "
        if c.clients
        else "no stream clients, "
    )
    line = Text("Probe of ", style="bold")
    line.append(c.url, style="bold cyan")
    sent = ""
    if c.requests:
        sent = (
            f", {', '.join(c.requests)} every {format_seconds(c.request_interval_s)} "
            f"(deadline {c.request_timeout_s:g} s)"
        )
    line.append(
        f"  {what}{c.health} every {format_seconds(c.health_interval_s)}{sent} "
        f"for {result.elapsed_s:.1f} s",
        style="dim",
    )
    return line


def _verdict_line(result: ProbeResult) -> Text:
    passed = result.verdict is ProbeVerdict.PASS
    line = Text()
    line.append(
        " PASS " if passed else " FAIL ",
        style="bold black on green" if passed else "bold white on red",
    )
    line.append("  ")
    line.append("; ".join(verdict_reasons(result)), style="bold green" if passed else "bold red")
    return line


def _latency_table(result: ProbeResult) -> RenderableType:
    s, c = result.summary, result.config
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("health", style="bold", no_wrap=True)
    for name in ("p50", "p90", "p99", "max"):
        table.add_column(name, justify="right")
    table.add_column("requests", justify="right")
    table.add_column("timeouts", justify="right")
    table.add_column("errors", justify="right")
    timeouts = Text(str(s.timeouts), style="bold red" if s.timeouts else "")
    table.add_row(
        result.config.health,
        format_seconds(s.p50_s),
        format_seconds(s.p90_s),
        format_seconds(s.p99_s),
        format_seconds(s.max_s),
        str(s.requests),
        timeouts,
        str(s.errors),
    )
    if s.baseline_requests:
        table.add_row(
            Text("baseline", style="dim"),
            format_seconds(s.baseline_p50_s),
            "-",
            format_seconds(s.baseline_p99_s),
            "-",
            str(s.baseline_requests),
            "-",
            "-",
        )
    legend = Text(
        f"  every health request counts; one with no answer counts at the deadline "
        f"({format_seconds(c.health_timeout_s)})",
        style="dim",
    )
    if s.baseline_requests:
        legend.append(
            f"\n  baseline: health alone for {c.baseline_s:g} s, before any stream opened"
        )
    return Group(table, legend)


def _requests_table(result: ProbeResult) -> RenderableType:
    """One row per --request path: its latencies, and how many got no answer in time."""
    c = result.config
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("request", style="bold", no_wrap=True)
    for name in ("p50", "p99", "max"):
        table.add_column(name, justify="right")
    for name in ("sent", "answered", "timeouts", "stuck", "errors"):
        table.add_column(name, justify="right")
    for r in result.request_stats:
        table.add_row(
            r.request,
            format_seconds(r.p50_s),
            format_seconds(r.p99_s),
            format_seconds(r.max_s),
            str(r.sent),
            str(r.answered),
            Text(str(r.timeouts), style="bold red" if r.timeouts else ""),
            Text(str(r.stuck), style="bold red" if r.stuck else ""),
            str(r.errors),
        )
    legend = Text(
        f"  each path every {format_seconds(c.request_interval_s)}, deadline "
        f"{c.request_timeout_s:g} s; stuck: no answer in time while {c.health} answered "
        f"under {format_seconds(c.p99_threshold_s)}",
        style="dim",
    )
    return Group(table, legend)


def _streams_line(result: ProbeResult) -> Text:
    s = result.summary
    line = Text("streams", style="bold")
    line.append(
        f"  opened {s.streams_opened} · aborted {s.streams_aborted} · "
        f"failed {s.streams_failed} · events read {s.events}"
    )
    return line


def _stalls(result: ProbeResult) -> RenderableType:
    s, c = result.summary, result.config
    head = Text("longest stall", style="bold")
    if not result.stalls:
        head.append(
            f"  none (no health request took {format_seconds(c.stall_threshold_s)} or more)"
        )
        return head
    longest = max(result.stalls, key=lambda w: w.t_end - w.t_start)
    head.append(f"  {format_seconds(s.longest_stall_s)}", style="bold red")
    head.append(
        f": from t={longest.t_start:.1f} s to {longest.t_end:.1f} s no health request was "
        f"answered within {format_seconds(c.stall_threshold_s)}; the slowest single one took "
        f"{format_seconds(longest.worst_latency_s)} ({len(result.stalls)} stall window(s))"
    )
    table = Table(box=None, padding=(0, 2), show_header=False, pad_edge=False)
    for _ in range(5):
        table.add_column(justify="right")
    for w in result.stalls[:_MAX_STALLS_SHOWN]:
        table.add_row(
            f"t={w.t_start:.1f} s → {w.t_end:.1f} s",
            format_seconds(w.t_end - w.t_start),
            f"{w.late} late",
            f"worst {format_seconds(w.worst_latency_s)}",
            f"{w.timeouts} timeout(s)",
        )
    parts: list[RenderableType] = [head, Padding(table, (0, 0, 0, 2), expand=False)]
    if len(result.stalls) > _MAX_STALLS_SHOWN:
        parts.append(Text(f"  ... {len(result.stalls) - _MAX_STALLS_SHOWN} more", style="dim"))
    parts.append(
        Text(
            "  a stall window: from a late request's send to the next prompt answer; "
            "it may hold many short stalls",
            style="dim",
        )
    )
    return Group(*parts)


def _server_records(result: ProbeResult) -> RenderableType | None:
    """--server-records: a line per stall or stuck record the server wrote during the run."""
    view = result.server_view
    if view is None or view.records_file is None:
        return None
    records = view.records
    stalls = sum(r.kind == "stall" for r in records)
    head = Text("server records", style="bold")
    head.append(
        f"  {stalls} stall(s), {len(records) - stalls} stuck episode(s) written to "
        f"{view.records_file} during the run"
    )
    parts: list[RenderableType] = [head]
    for r in records[:_MAX_RECORDS_SHOWN]:
        line = Text(f"  t={r.t:.2f} s  ")
        line.append(r.code, style="bold red")
        if r.kind == "stall":
            line.append(f" stall {format_seconds(r.blocked_for_s)}")
        else:
            line.append(" stuck" + (f" {r.waiting_s:.1f} s" if r.waiting_s is not None else ""))
        line.append(f" at {r.file}:{r.line}", style="bold")
        line.append(f" in {r.function}")
        if r.waits_on:
            line.append(f", waiting on {r.waits_on}")
        if r.request:
            line.append(f" during {r.request}")
        parts.append(line)
    if len(records) > _MAX_RECORDS_SHOWN:
        parts.append(Text(f"  ... {len(records) - _MAX_RECORDS_SHOWN} more", style="dim"))
    if view.records_note:
        note = Text("note: ", style="bold yellow")
        note.append(view.records_note)
        parts.append(note)
    return Group(*parts)


def render_summary(result: ProbeResult, *, width: int | None = None) -> RenderableType:
    """The end of a run: what was probed, the verdict, percentiles, stalls, streams, diagnosis."""
    parts: list[RenderableType] = [
        _header(result),
        _verdict_line(result),
        Text(),
        _latency_table(result),
        _stalls(result),
    ]
    if result.request_stats:
        parts.append(_requests_table(result))
    if not result.config.requests or result.config.clients or result.streams:
        parts.append(_streams_line(result))  # no stream clients to speak of beside requests
    records = _server_records(result)
    if records is not None:
        parts.append(records)
    parts.append(Text())
    if result.diagnosis is not None:
        # rich.syntax and the catalog load only when there is a diagnosis to draw
        from hangdoctor.report.terminal import render_terminal

        caught = Text("Caught in the act", style="bold")
        caught.append(
            f" at t={result.diagnosis_t or 0.0:.1f} s"
            + (f" (pid {result.pid} and its workers)" if result.pid else "")
            + (", while requests were stuck" if result.diagnosis_kind == "stuck" else ""),
        )
        parts += [caught, render_terminal(result.diagnosis.without_locals(), width=width)]
    for note in result.notes:
        line = Text("note: ", style="bold yellow")
        line.append(note)
        parts.append(line)
    return Group(*parts)
