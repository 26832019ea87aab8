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
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console

from hangdoctor.errors import EXIT_OK, EXIT_PROBLEM, HangdoctorError
from hangdoctor.model import Finding
from hangdoctor.probe.engine import probe
from hangdoctor.probe.server import ManagedServer, ServerError
from hangdoctor.probe.timeline import ProbeConfig, ProbeResult, ProbeVerdict

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
    from hangdoctor.probe.terminal import LiveProgress, render_summary

    server = ManagedServer(
        argv, base_url=config.url, ready_path=config.health, ready_timeout=ready_timeout
    )
    console.rule(f"[bold]{title}[/]")
    with server:
        console.print(f"server pid {server.pid} answers {config.url}{config.health}")
        with LiveProgress(Console(stderr=True, highlight=False)) as progress:
            try:
                result = probe(config, pid=server.pid, on_progress=progress)
            except HangdoctorError as exc:
                if server.returncode is not None:
                    raise ServerError(
                        f"The server exited with code {server.returncode} during the probe.",
                        "Its last output:\n" + server.log_tail(),
                    ) from exc
                raise
        console.print(render_summary(result, width=console.width))
        server.stop(grace=1.0)  # a hung loop cannot shut itself down gracefully
    return result


def _fixable(finding: Finding) -> bool:
    from hangdoctor.fix import FIXABLE

    return FIXABLE.get(finding.code, False) and Path(finding.file).is_file()


def _apply_fix(console: Console, finding: Finding) -> bool:
    """Apply the catalog's safe fix at the finding's line; True when the file changed."""
    from hangdoctor.fix import FixSite, fix_file

    path = Path(finding.file)
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    line = text[finding.line - 1] if 0 < finding.line <= len(text) else ""
    col = len(line) - len(line.lstrip())
    result = fix_file(path, [FixSite(finding.code, finding.line, col)], write=True)
    for skipped in result.outcome.skipped:
        console.print(f"[yellow]not fixed[/] {finding.code} line {skipped.line}: {skipped.reason}")
    if not result.outcome.applied:
        return False
    console.print(f"[bold]Applied the {finding.code} fix to {path}:[/]")
    console.print(result.diff(), markup=False, highlight=False)
    return True


def _recommend(console: Console, finding: Finding) -> None:
    from hangdoctor.catalog import get_rule

    rule = get_rule(finding.code)
    console.print(f"[bold]Recommended fix for {finding.code}[/] ({rule.name}): {rule.fix}")
    console.print(f"hangdoctor explain {finding.code} shows the example.")


@click.command("doctor", context_settings={"ignore_unknown_options": True})
@click.option("--stream", "streams", multiple=True, metavar="PATH", help="A stream path.")
@click.option("--health", default="/health", show_default=True, help="The health path.")
@click.option("--url", help="Base URL, when the server command does not name its port.")
@click.option("--clients", type=click.IntRange(0, 2000), default=10, show_default=True)
@click.option(
    "--duration", type=click.FloatRange(1, 600), default=10.0, show_default=True, help="Seconds."
)
@click.option("--health-timeout", type=click.FloatRange(0.1, 60), default=2.0, show_default=True)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(1, 600),
    default=30.0,
    show_default=True,
    help="How long the server may take to answer its health path.",
)
@click.option("--fix", is_flag=True, help="Apply the automatic fix, restart and probe again.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html")
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def command(
    ctx: click.Context,
    streams: tuple[str, ...],
    health: str,
    url: str | None,
    clients: int,
    duration: float,
    health_timeout: float,
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

    Exit status: 0 the (final) probe passed, 1 it failed, 2 the server could
    not be started or probed.
    """
    argv = [a for a in server if a != "--"] if server and server[0] == "--" else list(server)
    if not argv:
        raise click.UsageError("Give the server command after `--`.")
    if not streams:
        raise click.UsageError("Give at least one --stream PATH to open and drop.")
    config = ProbeConfig(
        url=_base_url(url, argv),
        streams=streams,
        health=health,
        clients=clients,
        duration_s=duration,
        health_timeout_s=health_timeout,
    )
    console = Console(highlight=False, soft_wrap=False)
    result = _run_once(console, argv, config, ready_timeout, "probe")
    final = result
    finding = (
        result.diagnosis.findings[0] if result.diagnosis and result.diagnosis.findings else None
    )
    if result.verdict is ProbeVerdict.FAIL and finding is not None:
        if fix and _fixable(finding):
            if _apply_fix(console, finding):
                final = _run_once(console, argv, config, ready_timeout, "probe after the fix")
                verdict = "passes" if final.verdict is ProbeVerdict.PASS else "still fails"
                console.print(f"[bold]After the fix the probe {verdict}.[/]")
        else:
            _recommend(console, finding)
            if fix:
                console.print(f"{finding.code} has no automatic fix; apply it by hand.")
    if report is not None:
        from hangdoctor.cli.probe import write_report

        write_report(final, report)
        console.print(f"[dim]report written to {report}[/]")
    ctx.exit(EXIT_OK if final.verdict is ProbeVerdict.PASS else EXIT_PROBLEM)
