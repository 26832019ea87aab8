"""The `hangdoctor` command line: diagnose, analyze, explain, demo."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path

import click

from hangdoctor import __version__
from hangdoctor.cli.errors import HangdoctorGroup
from hangdoctor.cli.options import FiniteFloatRange
from hangdoctor.errors import EXIT_OK, EXIT_PROBLEM, BadDumpError
from hangdoctor.model import Diagnosis, Verdict

__all__ = ["cli", "entry"]

_FORMATS = click.Choice(["text", "json"], case_sensitive=False)
_FORMAT_HELP = "text: the diagnosis for people; json: the same in a stable schema."


def _exit_code(diagnosis: Diagnosis) -> int:
    return EXIT_OK if diagnosis.verdict is Verdict.HEALTHY else EXIT_PROBLEM


def _emit(diagnosis: Diagnosis, fmt: str, *, all_frames: bool, footer: str | None = None) -> None:
    if fmt == "json":
        from hangdoctor.report.json_report import diagnosis_to_json

        click.echo(diagnosis_to_json(diagnosis))
        return
    from hangdoctor.report.console import TrimmedConsole
    from hangdoctor.report.terminal import render_terminal

    console = TrimmedConsole(highlight=False, soft_wrap=False)
    console.print(render_terminal(diagnosis, width=console.width, show_all_frames=all_frames))
    hints = [footer] if footer else []
    if diagnosis.findings and not all_frames:
        hints.append("--all-frames shows every frame")
    if hints:
        console.print(f"[dim]{'; '.join(hints)}[/]")


@click.group(
    cls=HangdoctorGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="hangdoctor")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for failures.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Find out why an asyncio web service stops answering.

    \b
    hangdoctor diagnose            diagnose the running uvicorn/gunicorn/... server
    hangdoctor diagnose --pid 123  diagnose a process and its worker processes
    hangdoctor analyze dump.txt    the same on a saved py-spy/faulthandler/pystack dump
    hangdoctor probe URL --stream /events    drop streams while timing /health; pass/fail
    hangdoctor doctor --stream /events -- uvicorn app:app --port 8000
                                   start, probe, catch the hang, --fix it, prove it
    hangdoctor scan src/           find the causes in source before they ship
    hangdoctor watch -- uvicorn app:app      the loop watchdog in every worker
    hangdoctor explain HD101       what a finding means and how to fix it
    hangdoctor demo                the whole workflow on the bundled example app

    Exit status: 0 healthy/pass/clean, 1 a problem was found, 2 hangdoctor
    could not look.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.command()
@click.option("--pid", type=int, metavar="PID", help="A server process (master or worker).")
@click.option("--match", metavar="TEXT", help="Pick the process whose command line contains TEXT.")
@click.option(
    "--samples",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Stack samples per process.",
)
@click.option(
    "--interval",
    type=FiniteFloatRange(0.0, 10.0),
    default=0.4,
    show_default=True,
    help="Seconds between samples.",
)
@click.option(
    "--locals",
    "show_locals",
    is_flag=True,
    help="Show the locals of your frame (values that look like secrets are redacted).",
)
@click.option("--show-secrets", is_flag=True, help="Do not redact locals that look like secrets.")
@click.option("--native", is_flag=True, help="Include C frames (py-spy --native).")
@click.option(
    "--nonblocking",
    is_flag=True,
    help="Read memory without pausing the target (use when another tracer is attached).",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(0.5, 60.0),
    default=5.0,
    show_default=True,
    help="Deadline for each py-spy call, in seconds.",
)
@click.option(
    "--anyio-limit",
    type=click.IntRange(1, 10_000),
    default=40,
    show_default=True,
    help="AnyIO worker thread limit of the target (starvation threshold).",
)
@click.option(
    "--stuck-after",
    type=FiniteFloatRange(0.0, 3600.0, min_open=True),
    default=None,
    metavar="SECONDS",
    help=(
        "CPython 3.14+ targets (any with --inject): read their tasks over SECONDS (the "
        "samples are spread over "
        "it) and report a request whose await did not move in that time, on a lock, a "
        "pool, a limiter or a future, as stuck (HD602-HD605). Without it only what needs "
        "no waiting is reported: an await deadlock (HD601) and a shutdown that waits (HD606)."
    ),
)
@click.option(
    "--inject",
    is_flag=True,
    help=(
        "Read the asyncio tasks from inside the target, on any Python (3.10-3.13 have no "
        "other way from outside): gdb stops the loop thread while it is idle in its poll, "
        "runs hangdoctor's read-only task snapshot there and detaches. Needs gdb. Risk: "
        "the target is stopped for about 0.3 s per sample, and if gdb dies during the call "
        "the target crashes. Without it, 3.10-3.13 targets show threads only."
    ),
)
@click.option(
    "--format", "fmt", type=_FORMATS, default="text", show_default=True, help=_FORMAT_HELP
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the raw samples to FILE (read it back with `hangdoctor analyze FILE`).",
)
@click.option("--all-frames", is_flag=True, help="Do not fold framework frames.")
@click.pass_context
def diagnose(
    ctx: click.Context,
    pid: int | None,
    match: str | None,
    samples: int,
    interval: float,
    show_locals: bool,
    show_secrets: bool,
    native: bool,
    nonblocking: bool,
    timeout: float,
    anyio_limit: int,
    stuck_after: float | None,
    inject: bool,
    fmt: str,
    save: Path | None,
    all_frames: bool,
) -> None:
    """Diagnose a live server: is its event loop blocked, by what, at which line.

    With no --pid or --match, finds the running uvicorn, gunicorn, hypercorn or
    granian server (and lists them if there are several). Every Python child
    process is examined too, so multi-worker servers are covered. Takes
    SAMPLES stack samples INTERVAL seconds apart with py-spy (about a second).

    On CPython 3.14+ it also reads every asyncio task from outside, so requests
    that hang while the loop answers (an await deadlock, a drained pool, a
    future nobody resolves) are found too: verdict `stuck`. On 3.10-3.13,
    --inject reads them from inside the target (opt-in: see its risk below).
    """
    from hangdoctor.capture.dumps import check_save_path, save_capture
    from hangdoctor.capture.procs import resolve_targets
    from hangdoctor.live import LiveOptions, diagnose_processes

    if pid is not None and match is not None:
        raise click.UsageError("Give either --pid or --match, not both.")
    check_save_path(save)  # before sampling, so that no diagnosis is thrown away
    targets = resolve_targets(pid, match)
    options = LiveOptions(
        samples=samples,
        interval=interval,
        locals=True,  # object addresses link a joined thread to its worker
        native=native,
        nonblocking=nonblocking,
        timeout=timeout,
        reveal_secrets=show_secrets,
        anyio_limit=anyio_limit,
        stuck_after=stuck_after,
        inject=inject,
    )
    result = diagnose_processes(targets, options)
    footer = (
        f"{len(result.diagnosis.pids)} process(es), {result.diagnosis.samples} samples, "
        f"verdict in {result.elapsed_s:.2f} s"
    )
    shown = result.diagnosis if show_locals else result.diagnosis.without_locals()
    _emit(
        replace(shown, secrets_redacted=not show_secrets), fmt, all_frames=all_frames, footer=footer
    )
    if save is not None:
        save_capture(result.snapshots, save)  # after the report: a full disk loses only the file
    ctx.exit(_exit_code(result.diagnosis))


@cli.command("analyze")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--source-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A checkout of the service, to show source lines of a dump taken elsewhere.",
)
@click.option(
    "--anyio-limit",
    type=click.IntRange(1, 10_000),
    default=40,
    show_default=True,
    help="AnyIO worker thread limit of the target (starvation threshold).",
)
@click.option(
    "--format", "fmt", type=_FORMATS, default="text", show_default=True, help=_FORMAT_HELP
)
@click.option("--all-frames", is_flag=True, help="Do not fold framework frames.")
@click.option("--locals", "show_locals", is_flag=True, help="Show your frame's locals (redacted).")
@click.option("--show-secrets", is_flag=True, help="Do not redact locals that look like secrets.")
@click.pass_context
def analyze_cmd(
    ctx: click.Context,
    file: Path,
    source_root: Path | None,
    anyio_limit: int,
    fmt: str,
    all_frames: bool,
    show_locals: bool,
    show_secrets: bool,
) -> None:
    """Analyse a saved dump: py-spy text or JSON, faulthandler, pystack, or --save output.

    A file with several dumps of the same process (e.g. three `py-spy dump`
    runs appended to one file) is read as consecutive samples, which is what
    tells a blocked loop from a momentary callback. Use - to read stdin.
    """
    from hangdoctor.analysis import analyze
    from hangdoctor.capture.dumps import load_dump, parse_dump
    from hangdoctor.capture.redact import redact_snapshot

    if str(file) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise BadDumpError(
                "`analyze -` reads the dump from standard input, but that is a terminal.",
                "Pipe the dump in (`py-spy dump --pid PID | hangdoctor analyze -`) "
                "or pass the file: `hangdoctor analyze dump.txt`.",
            )
        snapshots = parse_dump(sys.stdin.read(), name="<stdin>")
    else:
        snapshots = load_dump(file)
    snapshots = [redact_snapshot(s, reveal=show_secrets) for s in snapshots]
    diagnosis = analyze(
        snapshots,
        anyio_limit=anyio_limit,
        source_root=str(source_root) if source_root else None,
    )
    shown = diagnosis if show_locals else diagnosis.without_locals()
    _emit(replace(shown, secrets_redacted=not show_secrets), fmt, all_frames=all_frames)
    ctx.exit(_exit_code(diagnosis))


@cli.command()
@click.argument("code", required=False)
@click.option("--list", "list_all", is_flag=True, help="List every catalog entry.")
def explain(code: str | None, list_all: bool) -> None:
    """Print a catalog entry: what it detects, why it hangs, example, fix.

    CODE is a code like HD101 or a name like executor-shutdown-on-loop.
    """
    from hangdoctor.catalog import all_rules, get_rule
    from hangdoctor.report.console import TrimmedConsole
    from hangdoctor.report.explain import render_rule, render_rule_list

    console = TrimmedConsole(highlight=False)
    if list_all or code is None:
        console.print(render_rule_list(all_rules()))
        return
    console.print(render_rule(get_rule(code)), crop=False)  # example lines whole: see render_rule


# Loaded when used: `hangdoctor scan` in a pre-commit hook should not import the probe.
cli.lazy_commands.update(
    {
        "probe": "hangdoctor.cli.probe",
        "doctor": "hangdoctor.cli.doctor",
        "scan": "hangdoctor.cli.scan",
        "demo": "hangdoctor.cli.demo",
        "watch": "hangdoctor.cli.watch",
        "schema": "hangdoctor.cli.schema",
    }
)


def _tolerant_output() -> None:
    """Never fail on a character the output's encoding lacks: write it as `\\xe9` instead.

    With PYTHONIOENCODING=ascii (or a pipe in a C locale on an old Python) a
    non-ASCII path, function name or box-drawing character would otherwise
    end the run with UnicodeEncodeError after all the work was done.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # a closed or detached stream has nothing to protect
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


def entry() -> None:
    """Console-script entry point."""
    _tolerant_output()
    cli(prog_name="hangdoctor")
