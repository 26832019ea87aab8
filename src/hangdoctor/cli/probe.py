"""`hangdoctor probe URL --stream PATH`: reproduce a hang on purpose, and prove a fix holds.

Exit status: 0 the service stayed responsive, 1 it did not (a health request
timed out or p99 passed the threshold, a --request got no answer within its
deadline), 2 it could not be probed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hangdoctor.cli.options import FiniteFloatRange
from hangdoctor.errors import EXIT_OK, EXIT_PROBLEM
from hangdoctor.outfile import reason, write_atomic
from hangdoctor.probe.engine import MAX_CLIENTS, MAX_DURATION_S, ProbeError, probe
from hangdoctor.probe.server_records import check_records_file
from hangdoctor.probe.target import parse_target
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult, ProbeVerdict
from hangdoctor.report.console import TrimmedConsole

__all__ = [
    "REQUEST_HELP",
    "REQUEST_INTERVAL_HELP",
    "REQUEST_TIMEOUT_HELP",
    "abort_range",
    "check_report_path",
    "command",
    "require_report_module",
    "stream_clients",
    "write_html",
    "write_report",
]


def request_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--request, --request-timeout, --request-interval, --inject: probe and doctor share them."""
    for option in reversed(
        (
            click.option(
                "--request", "requests", multiple=True, metavar="'[METHOD] PATH'", help=REQUEST_HELP
            ),
            click.option(
                "--request-timeout",
                type=FiniteFloatRange(0.05, 300.0),
                default=5.0,
                show_default=True,
                help=REQUEST_TIMEOUT_HELP,
            ),
            click.option(
                "--request-interval",
                type=FiniteFloatRange(0.05, 60.0),
                default=0.5,
                show_default=True,
                help=REQUEST_INTERVAL_HELP,
            ),
            click.option("--inject", is_flag=True, help=INJECT_HELP),
        )
    ):
        command = option(command)
    return command


REQUEST_HELP = (
    "A request sent beside the health checks with a deadline, as PATH (a GET) or "
    "'METHOD PATH' (repeatable). One that gets no answer in time while health answers is "
    "stuck on a healthy loop: the run fails and the server's tasks are read (3.14+)."
)
INJECT_HELP = (
    "When a --request is stuck on a Python 3.10-3.13 server, read its tasks from inside it "
    "with gdb, as `diagnose --inject` does (see its --help for the risk). Needs gdb."
)
REQUEST_TIMEOUT_HELP = "Deadline of each --request, in seconds: later is no answer."
REQUEST_INTERVAL_HELP = (
    "Seconds between two sends of each --request path (at most 4 of a path wait at once)."
)

_REPORT_MODULE = "hangdoctor.report.html"


def abort_range(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    """`--abort-after MIN-MAX` (or one number) as seconds; shared by probe and doctor."""
    low, sep, high = value.partition("-")
    try:
        lo = float(low)
        hi = float(high) if sep else lo
    except ValueError:
        raise click.BadParameter("give MIN-MAX seconds, like 0.2-3") from None
    if not 0 < lo <= hi < float("inf"):
        raise click.BadParameter("give MIN-MAX seconds with 0 < MIN <= MAX, like 0.2-3")
    return lo, hi


def _headers(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    out = []
    for item in value:
        name, sep, text = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not 'Name: value'")
        out.append((name.strip(), text.strip()))
    return tuple(out)


def stream_clients(
    ctx: click.Context, clients: int, streams: tuple[str, ...], requests: tuple[str, ...]
) -> int:
    """--clients, but 0 when only --request paths are given and --clients was left alone."""
    explicit = ctx.get_parameter_source("clients") is not click.core.ParameterSource.DEFAULT
    if requests and not streams and not explicit:
        return 0
    return clients


def require_report_module() -> None:
    if importlib.util.find_spec(_REPORT_MODULE) is None:
        raise ProbeError(
            "This hangdoctor cannot write HTML reports (hangdoctor.report.html is missing).",
            "Run without --report, and use --format json to keep the results.",
        )


def write_report(result: ProbeResult, path: Path) -> None:
    """Render the HTML report and write it atomically: a reader never sees half a file."""
    from hangdoctor.report.probe_json import redacted

    require_report_module()
    module = importlib.import_module(_REPORT_MODULE)
    write_html(module.render_probe_html(redacted(result)), path)


def write_html(html: str, path: Path) -> None:
    """Write a report atomically; a disk that cannot take it is one sentence (exit 2)."""
    try:
        write_atomic(path, html)
    except OSError as exc:  # write_atomic left no partial file and the old one untouched
        raise ProbeError(
            f"The report could not be written to {path}: {reason(exc)}.",
            "The results are shown above; free some space or pass --report with a path "
            "on another disk, and run the probe again.",
        ) from None


def check_report_path(path: Path) -> None:
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ProbeError(
            f"The report cannot be written to {path}: {parent} is not a writable directory.",
            "Pass --report with a path in an existing, writable directory.",
        )


@click.command("probe")
@click.argument("url")
@click.option(
    "--stream",
    "streams",
    multiple=True,
    metavar="PATH",
    help="An SSE endpoint the clients open and drop (repeatable; clients take turns).",
)
@click.option(
    "--health",
    metavar="PATH",
    help="The endpoint timed while streams churn.  [default: the URL's path, else /health]",
)
@click.option(
    "--clients",
    type=click.IntRange(0, MAX_CLIENTS),
    default=20,
    show_default=True,
    help="Concurrent stream clients (0: time health only, e.g. with a browser as the client).",
)
@click.option(
    "--duration",
    type=FiniteFloatRange(0, MAX_DURATION_S, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds the clients run.",
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
    "--health-interval",
    type=FiniteFloatRange(0.01, 60.0),
    default=0.1,
    show_default=True,
    help="Seconds between health requests (on a fixed schedule).",
)
@click.option(
    "--health-timeout",
    type=FiniteFloatRange(0.05, 300.0),
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
    help="Seconds of health-only timing before the streams start (0: no baseline, no "
    "--max-slowdown check).",
)
@request_options
@click.option("--pid", type=int, metavar="PID", help="The server process to capture a stall in.")
@click.option("--no-capture", is_flag=True, help="Do not capture the server's stacks on a stall.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    callback=_headers,
    help="A request header for streams and health (repeatable), e.g. for auth.",
)
@click.option(
    "--method",
    metavar="METHOD",
    help="HTTP method of the streams.  [default: GET, POST with --body]",
)
@click.option(
    "--body",
    metavar="TEXT",
    help="Request body of the streams (JSON unless a Content-Type header says otherwise).",
)
@click.option("--insecure", is_flag=True, help="https: do not verify the server's certificate.")
@click.option("--seed", type=int, help="Seed of the random abort moments, to repeat a run.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="text: the summary and the diagnosis; json: the whole timeline (docs/probe.md).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.html",
    help="Also write a self-contained HTML report of the run.",
)
@click.option(
    "--server-metrics",
    default="auto",
    show_default=True,
    metavar="auto|off|PATH|URL",
    help="The hangdoctor runtime's Prometheus metrics inside the server, read every 0.25 s "
    "to show what the server saw (loop lag, stalls by code, stuck requests, threads, streams, "
    "RSS). auto: URL/metrics, if it serves them.",
)
@click.option(
    "--server-records",
    metavar="FILE",
    help="The JSON Lines file the server appends its stall and stuck records to "
    "(`hangdoctor watch --out FILE`), followed during the run: each record written after "
    "the probe starts is shown exactly on the health chart's time axis, with its code and "
    "file:line. May not exist yet; works beside --server-metrics.",
)
@click.pass_context
def command(
    ctx: click.Context,
    url: str,
    streams: tuple[str, ...],
    health: str | None,
    clients: int,
    duration: float,
    abort_after: tuple[float, float],
    health_interval: float,
    health_timeout: float,
    p99_threshold: float,
    stall_threshold: float,
    max_slowdown: float,
    baseline_s: float,
    requests: tuple[str, ...],
    request_timeout: float,
    request_interval: float,
    inject: bool,
    pid: int | None,
    no_capture: bool,
    headers: tuple[tuple[str, str], ...],
    method: str | None,
    body: str | None,
    insecure: bool,
    seed: int | None,
    fmt: str,
    report: Path | None,
    server_metrics: str,
    server_records: str | None,
) -> None:
    """Open and drop SSE streams while timing a health endpoint; pass or fail.

    \b
    hangdoctor probe http://127.0.0.1:8000 --stream /news/stream
    hangdoctor probe http://127.0.0.1:8000/health --stream /a --stream /b --clients 50
    hangdoctor probe https://staging.example --stream /events --header 'Authorization: Bearer T'
    hangdoctor probe http://127.0.0.1:8000 --request 'POST /transfer' --request /orders

    URL is the service's base URL; a path in it is the health path (unless
    --health is given, then the URL must have none). Each client opens a
    stream, reads events, drops the connection after a random time (an RST or
    a FIN) and reconnects, until DURATION ends; meanwhile the health path is
    requested every HEALTH-INTERVAL with its own deadline. When one is still
    waiting at STALL-THRESHOLD, the server (--pid, or the local process
    listening on the URL's port) is sampled right then and diagnosed.

    Before the streams start, health alone is timed for BASELINE seconds. A
    run passes when no health request timed out, the p99 is under
    P99-THRESHOLD, and the p99 is at most MAX-SLOWDOWN times the baseline's.
    Percentiles count every health request, one with no answer at the deadline.

    Each --request path is sent every REQUEST-INTERVAL with its own deadline,
    REQUEST-TIMEOUT. One with no answer by then fails the run; when health
    answered under P99-THRESHOLD all the while, the request is stuck on a
    healthy loop, and the server's tasks are read right then (CPython 3.14+).
    With --request and no --stream, no stream clients run.

    Exit status: 0 pass, 1 fail (a health request timed out, p99 was over the
    threshold or too far over the baseline, a --request got no answer in
    time), 2 the service could not be probed.
    """
    from hangdoctor.report.probe_terminal import LiveProgress

    if pid is not None and no_capture:
        raise click.UsageError("Give either --pid or --no-capture, not both.")
    if report is not None:
        require_report_module()
        check_report_path(report)
    endpoint, health_path = parse_target(url, health)
    if server_records is not None:
        check_records_file(server_records)  # a directory or a FIFO: said before anything runs
    config = ProbeConfig(
        url=endpoint.base_url,
        streams=streams,
        health=health_path,
        clients=stream_clients(ctx, clients, streams, requests),
        duration_s=duration,
        abort_min_s=abort_after[0],
        abort_max_s=abort_after[1],
        health_interval_s=health_interval,
        health_timeout_s=health_timeout,
        p99_threshold_s=p99_threshold,
        stall_threshold_s=stall_threshold,
        max_slowdown=max_slowdown,
        baseline_s=baseline_s,
        method=(method or ("POST" if body is not None else "GET")).upper(),
        seed=seed,
        headers=headers,
        body=body,
        insecure=insecure,
        requests=requests,
        request_timeout_s=request_timeout,
        request_interval_s=request_interval,
        inject=inject,
        server_metrics=server_metrics,
        server_records=server_records,
    )
    with LiveProgress(TrimmedConsole(stderr=True, highlight=False)) as progress:
        result = probe(config, pid=pid, capture=not no_capture, on_progress=progress)
    code = EXIT_OK if result.verdict is ProbeVerdict.PASS else EXIT_PROBLEM
    # the results first: a report that cannot be written must not take them with it
    if fmt == "json":
        from hangdoctor.report.probe_json import probe_to_json

        click.echo(probe_to_json(result, exit_code=code))
    else:
        from hangdoctor.report.probe_terminal import render_summary

        console = TrimmedConsole(highlight=False, soft_wrap=False)  # no padded line ends
        console.print(render_summary(result, width=console.width))
    if report is not None:
        write_report(result, report)
        if fmt != "json":
            console.print(f"[dim]report written to {report}[/]")
    ctx.exit(code)
