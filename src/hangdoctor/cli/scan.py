"""`hangdoctor scan`: find hangs in source code; `--fix` / `--diff` fix what can be fixed safely."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from hangdoctor.errors import HangdoctorError
from hangdoctor.outfile import check_writable, reason, write_atomic
from hangdoctor.scan import ScanOptions, ScanResult, load_config, scan_paths
from hangdoctor.scan.config import (
    DEFAULT_MAX_FILE_SIZE,
    ScanConfig,
    ScanConfigError,
    format_size,
    parse_size,
    parse_target_version,
)

__all__ = ["command"]

_FORMATS = click.Choice(
    ["human", "text", "concise", "json", "sarif", "github"], case_sensitive=False
)
_DEFAULT_TARGET = (3, 10)


class FixesUnavailableError(HangdoctorError):
    """This build of hangdoctor has no fix module."""


class ReportNotWrittenError(HangdoctorError):
    """The --output file cannot be written."""


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ScanConfigError:
        raise click.BadParameter(
            f"{value!r} is not a file size (write it like 2MB, 500KB or 2000000)."
        ) from None


def _codes(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(c.strip().upper() for c in value.split(",") if c.strip())


def _fix_api() -> Any:
    try:
        import hangdoctor.fix as fix
    except ImportError:
        raise FixesUnavailableError(
            "Fixes are not available in this build of hangdoctor.",
            "Install a release that includes hangdoctor.fix, or fix the findings by hand "
            "(`hangdoctor explain CODE` shows how).",
        ) from None
    return fix


def _fixable() -> Mapping[str, bool]:
    try:
        from hangdoctor.fix.codes import FIXABLE
    except ImportError:
        return {}
    return FIXABLE


def _render(result: ScanResult, fmt: str, output: Path | None, fixable: Mapping[str, bool]) -> None:
    text: str | None = None
    if fmt == "concise":
        from hangdoctor.report.scan_concise import render_scan_concise

        text = render_scan_concise(result)
    elif fmt == "github":
        from hangdoctor.report.scan_github import render_scan_github

        text = render_scan_github(result)
    elif fmt == "json":
        from hangdoctor.report.scan_json import scan_to_json

        text = scan_to_json(result, fixable)
    elif fmt == "sarif":
        from hangdoctor.report.scan_sarif import scan_to_sarif_json

        text = scan_to_sarif_json(result)
    if text is not None:
        if output is not None:
            _write(output, text)
        else:
            click.echo(text, nl=False)
        return
    from hangdoctor.report.console import TrimmedConsole
    from hangdoctor.report.scan_human import render_scan_human

    if output is not None:
        buffer = io.StringIO()
        TrimmedConsole(file=buffer, width=100, no_color=True, highlight=False).print(
            render_scan_human(result, fixable)
        )
        _write(output, buffer.getvalue())
        return
    TrimmedConsole(highlight=False, soft_wrap=False).print(render_scan_human(result, fixable))


def _not_written(path: Path, why: str) -> ReportNotWrittenError:
    return ReportNotWrittenError(
        f"The report cannot be written to {path}: {why}.",
        "Pass --output a file in an existing directory you can write to.",
    )


def _write(path: Path, text: str) -> None:
    """Write the whole report or nothing: a full disk leaves the old report as it was."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise _not_written(path, reason(exc)) from None


def _check_paths(paths: tuple[Path, ...]) -> None:
    """A path that does not exist is a typing mistake: say so, scan nothing."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        what = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise ScanConfigError(
            f"{what} {'does' if len(missing) == 1 else 'do'} not exist.",
            "Check the path, and pass files or folders to scan (e.g. `hangdoctor scan src/`).",
        )


def _apply_fixes(
    result: ScanResult, *, unsafe: bool, diff: bool, target: tuple[int, int], to_err: bool
) -> int:
    """Fix every fixable finding; print diffs (--diff) and what was done. Fixes applied."""
    fix = _fix_api()
    fixable: Mapping[str, bool] = fix.FIXABLE
    echo = (lambda s: click.echo(s, err=True)) if to_err else click.echo
    by_file: dict[str, list[Any]] = {}
    hidden = 0
    for f in result.findings:
        if f.code not in fixable:
            continue
        if not fixable[f.code] and not unsafe:
            hidden += 1
            continue
        by_file.setdefault(f.file, []).append(fix.FixSite(f.code, f.line, f.col or 0))
    applied = 0
    skipped: list[str] = []
    for display, sites in by_file.items():
        src = result.files[display]
        outcome = fix.fix_file(src.path, sites, unsafe=unsafe, target_python=target, write=not diff)
        if diff and outcome.changed:
            click.echo(outcome.diff(display), nl=False)
        applied += len(outcome.outcome.applied)
        skipped += [
            f"{display}:{s.line}: {s.code} not fixed: {s.reason}" for s in outcome.outcome.skipped
        ]
    verb = "Would fix" if diff else "Fixed"
    echo(f"{verb} {applied} problem{'s' if applied != 1 else ''}.")
    for line in skipped:
        echo(line)
    if hidden:
        echo(f"{hidden} more can be fixed with `--unsafe-fixes` (they change where code runs).")
    return applied


@click.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=_FORMATS,
    default="human",
    show_default=True,
    help="human: grouped with source and fixes; concise: path:line:col: CODE message; "
    "json; sarif (GitHub code scanning); github (workflow annotations).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE instead of standard output.",
)
@click.option("--select", metavar="CODES", help="Only these codes or prefixes (HD1,HD201).")
@click.option("--ignore", metavar="CODES", help="Also ignore these codes or prefixes.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read settings from FILE instead of the nearest pyproject.toml.",
)
@click.option(
    "--no-cache", is_flag=True, help="Parse every file again; do not read or write the cache."
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes for parsing (default: one per core).",
)
@click.option(
    "--max-file-size",
    callback=_size,
    metavar="SIZE",
    help="Do not scan files bigger than SIZE, e.g. generated code; they are reported as not "
    f"scanned (default: `max-file-size` in [tool.hangdoctor], else "
    f"{format_size(DEFAULT_MAX_FILE_SIZE).replace(' ', '')}).",
)
@click.option("--fix", "do_fix", is_flag=True, help="Apply the safe fixes in place.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff; change nothing.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that change where code runs.")
@click.option(
    "--target-version",
    metavar="pyXY",
    help="Lowest Python the fixed code must run on (default: from requires-python, else py310).",
)
@click.pass_context
def command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    select: str | None,
    ignore: str | None,
    config_file: Path | None,
    no_cache: bool,
    jobs: int | None,
    max_file_size: int | None,
    do_fix: bool,
    diff: bool,
    unsafe_fixes: bool,
    target_version: str | None,
) -> None:
    """Find code that can hang the event loop: blocking calls in async code (also through
    sync helpers in other modules), executors shut down on the loop, streams that ignore
    disconnects.

    \b
    hangdoctor scan                     the current project
    hangdoctor scan src/ --format sarif -o hangdoctor.sarif
    hangdoctor scan app.py --diff       show the safe fixes
    hangdoctor scan --fix               apply them

    Exit status: 0 nothing found, 1 problems found, 2 a file could not be scanned
    (and nothing was found: unreadable, a syntax error, over --max-file-size), a
    path does not exist, or the settings are invalid.
    """
    fmt = "human" if fmt.lower() == "text" else fmt.lower()
    _check_paths(paths)
    if output is not None and (why := check_writable(output)) is not None:
        raise _not_written(output, why)  # before the scan, not after it
    roots = list(paths)
    config: ScanConfig = load_config(roots or [Path.cwd()], config_file)
    if max_file_size is not None:
        config = dataclasses.replace(config, max_file_size=max_file_size)
    if not roots:
        roots = [config.root]
    options = ScanOptions(
        use_cache=not no_cache, jobs=jobs, select=_codes(select), ignore=_codes(ignore) or ()
    )
    _check_codes(options)
    result = scan_paths(roots, options, config)
    if do_fix or diff:
        if target_version:
            target = parse_target_version(target_version)
        else:
            target = config.target_version or _DEFAULT_TARGET
        applied = _apply_fixes(
            result, unsafe=unsafe_fixes, diff=diff, target=target, to_err=fmt != "human"
        )
        if applied and not diff:
            result = scan_paths(roots, options, config)  # what is left, at its new lines
    _render(result, fmt, output, _fixable())
    ctx.exit(result.exit_code)


def _check_codes(options: ScanOptions) -> None:
    from hangdoctor.catalog import all_rules

    static = [r.code for r in all_rules() if r.static]
    for code in (*(options.select or ()), *options.ignore):
        if code != "ALL" and not any(s.startswith(code) for s in static):
            raise ScanConfigError(
                f"{code!r} matches no scan code.",
                "Use codes or prefixes of: " + ", ".join(static) + ".",
            )
