"""`hangdoctor doctor -- <server command>`: start, probe, catch in the act, (fix), prove.

hangdoctor starts the server itself, waits until its health path answers,
probes it with stream clients that drop their connections, captures the stacks
at the moment a health check stalls, and prints the diagnosis. With `--fix` it
applies the catalog's automatic fix for what it found, restarts the server and
probes again to show the hang is gone. The server is always stopped again, by
PID, with everything it started: also on Ctrl-C, a crash, or a server that
never comes up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hangdoctor.cli.options import FiniteFloatRange
from hangdoctor.cli.probe import abort_range, request_options, stream_clients
from hangdoctor.errors import EXIT_OK, EXIT_PROBLEM, HangdoctorError
from hangdoctor.model import Finding
from hangdoctor.probe.engine import probe
from hangdoctor.probe.server import ManagedServer, ServerError
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult, ProbeVerdict
from hangdoctor.report.console import TrimmedConsole

__all__ = ["command", "port_of"]

# How servers are told their port: uvicorn/granian --port, hypercorn/gunicorn --bind/-b.
_PORT_FLAGS = ("--port", "-p")
_BIND_FLAGS = ("--bind", "-b")
_HOST_PORT = re.compile(r"^(?:\[[^\]]*\]|[^:]*):(\d+)$")


def port_of(argv: Sequence[str]) -> int | None:
    """The TCP port a server command line asks for, or None when it does not say."""
    for i, arg in enumerate(argv):
        for flag in (*_PORT_FLAGS, *_BIND_FLAGS):
            value: str | None = None
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            if flag in _PORT_FLAGS and value.isdigit():
                return int(value)
            m = _HOST_PORT.match(value)
            if m:
                return int(m.group(1))
    return None


def _base_url(url: str | None, argv: Sequence[str]) -> str:
    if url:
        return url.rstrip("/")
    port = port_of(argv)
    if port is None:
        raise HangdoctorError(
            "hangdoctor cannot tell which port the server command listens on.",
            "Pass --port/--bind in the server command, or --url http://127.0.0.1:PORT.",
        )
    return f"http://127.0.0.1:{port}"


def _run_once(
    console: Console,
    argv: Sequence[str],
    config: ProbeConfig,
    ready_timeout: float,
    title: str,
) -> ProbeResult:
    from hangdoctor.report.probe_terminal import LiveProgress, render_summary

    server = ManagedServer(
        argv, base_url=config.url, ready_path=config.health, ready_timeout=ready_timeout
    )
    console.rule(f"[bold]{title}[/]")
    with server:
        console.print(f"server pid {server.pid} answers {config.url}{config.health}")
        with LiveProgress(TrimmedConsole(stderr=True, highlight=False)) as progress:
            try:
                result = probe(config, pid=server.pid, on_progress=progress)
            except HangdoctorError as exc:
                if server.returncode is not None:
                    raise ServerError(
                        f"The server exited with code {server.returncode} during the probe.",
                        server.failure_output(),
                    ) from exc
                raise
        console.print(render_summary(result, width=console.width))
        server.stop(grace=1.0)  # a hung loop cannot shut itself down gracefully
    return result


def _fixable(finding: Finding) -> bool:
    from hangdoctor.fix import FIXABLE

    return FIXABLE.get(finding.code, False) and Path(finding.file).is_file()


def _apply_fix(console: Console, finding: Finding) -> str | None:
    """Apply the catalog's safe fix at the finding's line; its diff when the file changed."""
    from hangdoctor.fix import FixSite, fix_file

    path = Path(finding.file)
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    line = text[finding.line - 1] if 0 < finding.line <= len(text) else ""
    col = len(line) - len(line.lstrip())
    result = fix_file(path, [FixSite(finding.code, finding.line, col)], write=True)
    for skipped in result.outcome.skipped:
        console.print(f"[yellow]not fixed[/] {finding.code} line {skipped.line}: {skipped.reason}")
    if not result.outcome.applied:
        return None
    diff = result.diff()
    console.print(f"[bold]Applied the {finding.code} fix to {path}:[/]")
    console.print(diff, markup=False, highlight=False)
    return diff


def _recommend(console: Console, finding: Finding) -> None:
    from hangdoctor.catalog import get_rule

    rule = get_rule(finding.code)
    console.print(f"[bold]Recommended fix for {finding.code}[/] ({rule.name}): {rule.fix}")
    console.print(f"hangdoctor explain {finding.code} shows the example.")


def _manual(console: Console, finding: Finding) -> None:
    """--fix on a cause without an automatic fix: say so, so nobody waits for a second run."""
    if finding.code.startswith("HD6"):
        console.print(
            f"There is no automatic fix for {finding.code}: requests that wait on one another "
            "need a change to how the code takes and releases what they wait on. The fix is "
            "manual; apply the one above by hand and run doctor again."
        )
    else:
        console.print(f"{finding.code} has no automatic fix; apply it by hand.")


def _before_after(before: ProbeResult, after: ProbeResult) -> Table:
    """The figures of the run before the fix and the run after it, side by side."""
    from hangdoctor.report.probe_terminal import format_seconds

    table = Table(title="before and after the fix", box=None, padding=(0, 2), pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")

    def verdict(r: ProbeResult) -> Text:
        passed = r.verdict is ProbeVerdict.PASS
        return Text(r.verdict.value.upper(), style="bold green" if passed else "bold red")

    def cause(r: ProbeResult) -> str:
        d = r.diagnosis
        return d.findings[0].code if d is not None and d.findings else "none caught"

    def slowdown(r: ProbeResult) -> str:
        return "-" if r.summary.slowdown is None else f"{r.summary.slowdown:.1f} times"

    def stuck(r: ProbeResult) -> str:
        sent = sum(s.sent for s in r.request_stats)
        return f"{sum(s.stuck for s in r.request_stats)} of {sent}"

    rows: list[tuple[str, Callable[[ProbeResult], str | Text]]] = [
        ("verdict", verdict),
        ("health p50", lambda r: format_seconds(r.summary.p50_s)),
        ("health p99", lambda r: format_seconds(r.summary.p99_s)),
        ("health max", lambda r: format_seconds(r.summary.max_s)),
        ("p99 / baseline", slowdown),
        ("timed out", lambda r: f"{r.summary.timeouts} of {r.summary.requests}"),
        ("longest stall window", lambda r: format_seconds(r.summary.longest_stall_s)),
        ("streams dropped", lambda r: str(r.summary.streams_aborted)),
        ("caught in the act", cause),
    ]
    if before.config.requests:
        rows.insert(-1, ("requests stuck", stuck))
    for label, value in rows:
        table.add_row(label, value(before), value(after))
    return table


def _write_report(
    console: Console,
    path: Path,
    before: ProbeResult,
    after: ProbeResult | None,
    diff: str | None,
    fixed: str | None,
) -> None:
    from hangdoctor.cli.probe import require_report_module, write_html
    from hangdoctor.report.probe_json import redacted

    require_report_module()
    from hangdoctor.report.html import render_doctor_html

    page = render_doctor_html(
        redacted(before),
        redacted(after) if after is not None else None,
        fix_diff=diff,
        fixed_file=fixed,
    )
    write_html(page, path)
    console.print(f"[dim]report written to {path}[/]")


@click.command("doctor", context_settings={"ignore_unknown_options": True})
@click.option(
    "--stream",
    "streams",
    multiple=True,
    metavar="PATH",
    help="An SSE endpoint the clients open and drop (repeatable; clients take turns).",
)
@click.option(
    "--health",
    default="/health",
    show_default=True,
    metavar="PATH",
    help="The endpoint timed while streams churn; also how readiness is checked.",
)
@click.option(
    "--url",
    metavar="URL",
    help="Base URL, when the server command does not name its port.",
)
@click.option(
    "--clients",
    type=click.IntRange(0, 2000),
    default=10,
    show_default=True,
    help="Concurrent stream clients.",
)
@click.option(
    "--duration",
    type=FiniteFloatRange(1, 600),
    default=10.0,
    show_default=True,
    help="Seconds each probe run lasts (before and after a fix).",
)
@click.option(
    "--abort-after",
    "abort_after",
    default="0.2-3",
    show_default=True,
    metavar="MIN-MAX",
    callback=abort_range,
    help="Each stream is dropped after a random time in this range (seconds).",
)
@click.option(
    "--health-timeout",
    type=FiniteFloatRange(0.1, 60),
    default=2.0,
    show_default=True,
    help="Deadline of each health request, in seconds: later counts as a timeout.",
)
@click.option(
    "--p99-threshold",
    type=FiniteFloatRange(0.0, 300.0, min_open=True),
    default=0.5,
    show_default=True,
    help="Pass only when the health p99 is under this many seconds.",
)
@click.option(
    "--stall-threshold",
    type=FiniteFloatRange(0.0, 300.0, min_open=True),
    default=0.5,
    show_default=True,
    help="A health request still waiting after this many seconds is a stall: capture then.",
)
@click.option(
    "--max-slowdown",
    type=FiniteFloatRange(1.0, 1e6),
    default=10.0,
    show_default=True,
    metavar="FACTOR",
    help="Fail when the health p99 is more than FACTOR times the baseline p99 timed before "
    "the streams start (baselines under 10 ms count as 10 ms).",
)
@click.option(
    "--baseline",
    "baseline_s",
    type=FiniteFloatRange(0.0, 60.0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds of health-only timing before the streams start (0: no baseline check).",
)
@request_options
@click.option("--seed", type=int, help="Seed of the random abort moments, to repeat a run.")
@click.option(
    "--ready-timeout",
    type=FiniteFloatRange(1, 600),
    default=30.0,
    show_default=True,
    help="How long the server may take to answer its health path.",
)
@click.option("--fix", is_flag=True, help="Apply the automatic fix, restart and probe again.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.html",
    help="Also write an HTML report: both runs side by side, the diagnosis and the fix's diff.",
)
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def command(
    ctx: click.Context,
    streams: tuple[str, ...],
    health: str,
    url: str | None,
    clients: int,
    duration: float,
    abort_after: tuple[float, float],
    health_timeout: float,
    p99_threshold: float,
    stall_threshold: float,
    max_slowdown: float,
    baseline_s: float,
    requests: tuple[str, ...],
    request_timeout: float,
    request_interval: float,
    inject: bool,
    seed: int | None,
    ready_timeout: float,
    fix: bool,
    report: Path | None,
    server: tuple[str, ...],
) -> None:
    """Start a server, probe it, catch a hang in the act, and (with --fix) prove the fix.

    \b
    hangdoctor doctor --stream /news/stream -- uvicorn app.main:app --port 8000
    hangdoctor doctor --stream /events --fix -- gunicorn -k uvicorn.workers.UvicornWorker \\
        -w 2 -b 127.0.0.1:8000 app.main:app
    hangdoctor doctor --request 'POST /transfer' -- uvicorn app.main:app --port 8000

    The probe options mean what they mean for `hangdoctor probe`; with
    --request and no --stream, no stream clients run. Requests stuck on a
    healthy loop (HD6xx) have no automatic fix: doctor shows the manual one.
    The server's
    output goes to a log in the temporary directory, removed when doctor ends;
    it is kept (and its path named) only when the server is why doctor failed.

    Exit status: 0 the (final) probe passed, 1 it failed, 2 the server could
    not be started or probed.
    """
    argv = [a for a in server if a != "--"] if server and server[0] == "--" else list(server)
    if not argv:
        raise click.UsageError("Give the server command after `--`.")
    if not streams and not requests:
        raise click.UsageError(
            "Give at least one --stream PATH to open and drop, or a --request PATH to time."
        )
    if report is not None:
        from hangdoctor.cli.probe import check_report_path, require_report_module

        require_report_module()
        check_report_path(report)
    config = ProbeConfig(
        url=_base_url(url, argv),
        streams=streams,
        health=health,
        clients=stream_clients(ctx, clients, streams, requests),
        duration_s=duration,
        abort_min_s=abort_after[0],
        abort_max_s=abort_after[1],
        health_timeout_s=health_timeout,
        p99_threshold_s=p99_threshold,
        stall_threshold_s=stall_threshold,
        max_slowdown=max_slowdown,
        baseline_s=baseline_s,
        seed=seed,
        requests=requests,
        request_timeout_s=request_timeout,
        request_interval_s=request_interval,
        inject=inject,
    )
    console = TrimmedConsole(highlight=False, soft_wrap=False)  # no padded line ends
    before = _run_once(console, argv, config, ready_timeout, "probe")
    after: ProbeResult | None = None
    diff: str | None = None
    finding = (
        before.diagnosis.findings[0] if before.diagnosis and before.diagnosis.findings else None
    )
    if before.verdict is ProbeVerdict.FAIL and finding is not None:
        if fix and _fixable(finding):
            diff = _apply_fix(console, finding)
            if diff is not None:
                after = _run_once(console, argv, config, ready_timeout, "probe after the fix")
                console.print(_before_after(before, after))
                verdict = "passes" if after.verdict is ProbeVerdict.PASS else "still fails"
                console.print(f"[bold]After the fix the probe {verdict}.[/]")
        else:
            _recommend(console, finding)
            if fix:
                _manual(console, finding)
    if report is not None:
        fixed = finding.file if diff is not None and finding is not None else None
        _write_report(console, report, before, after, diff, fixed)
    final = after or before
    ctx.exit(EXIT_OK if final.verdict is ProbeVerdict.PASS else EXIT_PROBLEM)
