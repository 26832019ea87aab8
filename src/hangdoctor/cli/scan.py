"""`hangdoctor scan`: find hangs in source code; `--fix` / `--diff` fix what can be fixed safely.

`--project` is what the pre-commit hook runs. pre-commit passes the staged
files, and a file scanned alone cannot show a blocking call one module away:
an async route that calls a sync helper in a file not staged. So each given
file's whole project (the nearest folder with a pyproject.toml, setup.cfg,
setup.py or `.git`) is scanned, the cache making a repeated scan cost about
one `stat` per file, and only what concerns the given files is reported: the
findings in them, and the findings elsewhere whose chain goes through them (a
helper that was made to block, and the unchanged routes that call it). The
exit status is that of the findings reported. mypy's hook works the same way
(it follows imports out of the given files); a flag rather than a new default
keeps `hangdoctor scan a.py b.py` meaning "these files" on the command line.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hangdoctor.errors import HangdoctorError
from hangdoctor.model import Finding
from hangdoctor.outfile import check_writable, reason, write_atomic
from hangdoctor.scan import ScanOptions, ScanResult, ScanStats, load_config, scan_paths
from hangdoctor.scan.config import (
    DEFAULT_MAX_FILE_SIZE,
    ScanConfig,
    ScanConfigError,
    format_size,
    parse_size,
    parse_target_version,
)
from hangdoctor.scan.files import project_root
from hangdoctor.scan.workers import shared_workers

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


def _covered(result: ScanResult, only: _Given | None) -> Callable[[str], bool] | None:
    """Which files (display paths) `--fix` may rewrite: all, or the `--project` given ones."""
    if only is None:
        return None
    return lambda display: only.covers(result.files[display].path)


def _warm_fixer() -> Callable[[], None] | None:
    """What the workers do for the marks while the scan's search runs (None: no fixer)."""
    try:
        from hangdoctor.fix.marks import warm_up
    except ImportError:
        return None
    return warm_up


def _marked(result: ScanResult, target: tuple[int, int], only: _Given | None) -> ScanResult:
    """`result` with the `[*]` / `[unsafe fix]` marks: the fixer's own dry run for each
    finding, so a mark is shown exactly when `--fix` (`--unsafe-fixes`) changes that code."""
    try:
        from hangdoctor.fix.marks import with_fix_marks
    except ImportError:
        return result  # a build without fixes: nothing is fixable
    return with_fix_marks(result, target=target, files=_covered(result, only))


def _render(result: ScanResult, fmt: str, output: Path | None) -> None:
    text: str | None = None
    if fmt == "concise":
        from hangdoctor.report.scan_concise import render_scan_concise

        text = render_scan_concise(result)
    elif fmt == "github":
        from hangdoctor.report.scan_github import render_scan_github

        text = render_scan_github(result)
    elif fmt == "json":
        from hangdoctor.report.scan_json import scan_to_json

        text = scan_to_json(result)
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
            render_scan_human(result)
        )
        _write(output, buffer.getvalue())
        return
    TrimmedConsole(highlight=False, soft_wrap=False).print(render_scan_human(result))


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


class _Given:
    """The files and folders given on the command line, to tell what `--project` reports."""

    def __init__(self, paths: tuple[Path, ...]) -> None:
        self.files: set[Path] = set()
        self.folders: list[Path] = []
        for path in paths:
            real = path.resolve()
            if real.is_dir():
                self.folders.append(real)
            else:
                self.files.add(real)
        # a symlink given keeps its own name: both names may be how the scan found it
        self.names = {p.name for p in self.files} | {p.name for p in paths}

    def covers(self, path: Path) -> bool:
        if not self.folders and path.name not in self.names:
            return False  # most files of a project: no resolve() (syscalls) for them
        real = path.resolve()
        return real in self.files or any(f == real or f in real.parents for f in self.folders)


def _report_on(result: ScanResult, given: _Given) -> tuple[ScanResult, list[str]]:
    """The findings of a project scan that concern the given files, and a note for each
    one kept from another file saying which given file it goes through."""
    covered = {display for display, src in result.files.items() if given.covers(src.path)}
    notes: list[str] = []

    def concerns(f: Finding) -> bool:
        if f.file in covered:
            return True
        through = [step.file for step in result.chain_of(f) if step.file in covered]
        if through:
            notes.append(
                f"{f.file}:{f.line}: {f.code} is reported though {f.file} is not among the "
                f"files given: its chain goes through {through[-1]}, which is."
            )
        return bool(through)

    findings = tuple(f for f in result.findings if concerns(f))
    lifecycle = tuple(f for f in result.lifecycle if concerns(f))
    kept = {(f.file, f.line, f.col or 0, f.code) for f in (*findings, *lifecycle)}
    report = dataclasses.replace(
        result,
        findings=findings,
        lifecycle=lifecycle,
        problems=tuple(p for p in result.problems if p.path in covered),
        steps={k: v for k, v in result.steps.items() if k in kept},
        fixes={k: v for k, v in result.fixes.items() if k in kept},
    )
    return report, notes


def _merge(results: list[ScanResult]) -> ScanResult:
    """One result from the scans of several projects (a monorepo's staged files)."""
    if len(results) == 1:
        return results[0]
    findings = {(f.file, f.line, f.col or 0, f.code): f for r in results for f in r.findings}
    lifecycle = {(f.file, f.line, f.col or 0, f.code): f for r in results for f in r.lifecycle}
    problems = {(p.path, p.line, p.message): p for r in results for p in r.problems}
    stats = [r.stats for r in results]
    return dataclasses.replace(
        results[0],
        findings=tuple(findings[k] for k in sorted(findings)),
        lifecycle=tuple(lifecycle[k] for k in sorted(lifecycle)),
        problems=tuple(problems[k] for k in sorted(problems, key=lambda k: (k[0], k[1] or 0))),
        stats=ScanStats(
            files=sum(s.files for s in stats),
            parsed=sum(s.parsed for s in stats),
            cached=sum(s.cached for s in stats),
            lines=sum(s.lines for s in stats),
            seconds=sum(s.seconds for s in stats),
            jobs=max(s.jobs for s in stats),
            cache_file=stats[0].cache_file,
        ),
        steps={k: v for r in results for k, v in r.steps.items()},
        files={k: v for r in results for k, v in r.files.items()},
        fixes={k: v for r in results for k, v in r.fixes.items()},
    )


def _settings(
    roots: list[Path],
    config_file: Path | None,
    max_file_size: int | None,
    respect_gitignore: bool | None,
) -> ScanConfig:
    config = load_config(roots or [Path.cwd()], config_file)
    if max_file_size is not None:
        config = dataclasses.replace(config, max_file_size=max_file_size)
    if respect_gitignore is not None:
        config = dataclasses.replace(config, respect_gitignore=respect_gitignore)
    return config


def _project_scan(
    paths: tuple[Path, ...],
    options: ScanOptions,
    config_file: Path | None,
    max_file_size: int | None,
    respect_gitignore: bool | None,
) -> tuple[ScanResult, list[str]]:
    """`--project`: scan the project of each given path, report on the given paths."""
    groups: dict[Path, list[Path]] = {}
    for path in paths:
        groups.setdefault(project_root(path), []).append(path)
    results: list[ScanResult] = []
    notes: list[str] = []
    for root, members in groups.items():
        config = _settings([root], config_file, max_file_size, respect_gitignore)
        # the given files too: one git ignores or a skipped folder holds is still scanned
        result = scan_paths([root, *members], options, config)
        report, said = _report_on(result, _Given(tuple(members)))
        results.append(report)
        notes += said
    return _merge(results), notes


def _apply_fixes(
    result: ScanResult,
    *,
    unsafe: bool,
    diff: bool,
    target: tuple[int, int],
    to_err: bool,
    only: _Given | None = None,
) -> int:
    """Fix every fixable finding (in the `only` files when given: a hook does not rewrite
    files that were not staged); print diffs (--diff) and what was done. Fixes applied."""
    fix = _fix_api()
    from hangdoctor.fix.marks import UNSAFE, fix_marks, fix_sites

    echo = (lambda s: click.echo(s, err=True)) if to_err else click.echo
    files = _covered(result, only)
    by_file = fix_sites(result, unsafe=unsafe, files=files)  # the sites the marks were made for
    hidden = 0
    if not unsafe:  # what only `--unsafe-fixes` would change, as the fixer says
        marks = fix_marks(result, target=target, files=files)
        hidden = sum(1 for mark in marks.values() if mark == UNSAFE)
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
@click.option(
    "--respect-gitignore/--no-respect-gitignore",
    default=None,
    help="Skip the files git ignores (.gitignore, .git/info/exclude, the global excludes "
    "file) below a given folder (default: `respect-gitignore` in [tool.hangdoctor], else "
    "on). A file named on the command line is scanned even when ignored.",
)
@click.option(
    "--project",
    "project_mode",
    is_flag=True,
    help="Scan the whole project of each given file (the nearest folder with a "
    "pyproject.toml, setup.cfg, setup.py or .git) and report only the findings in the given "
    "files and those elsewhere whose chain goes through them. The pre-commit hook runs this.",
)
@click.option(
    "--fail-on-startup",
    is_flag=True,
    help="Exit 1 for findings in startup and shutdown code too (they are shown apart, "
    "and by default do not fail the check).",
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
    respect_gitignore: bool | None,
    project_mode: bool,
    fail_on_startup: bool,
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
    hangdoctor scan --project app/a.py  the project, reported for app/a.py (pre-commit)

    Findings in code that runs once, at startup or shutdown (a lifespan, startup
    handlers), are shown apart and do not fail the check unless --fail-on-startup.

    Exit status: 0 nothing found, 1 problems found, 2 a file could not be scanned
    (and nothing was found: unreadable, a syntax error, over --max-file-size), a
    path does not exist, or the settings are invalid.
    """
    fmt = "human" if fmt.lower() == "text" else fmt.lower()
    _check_paths(paths)
    if output is not None and (why := check_writable(output)) is not None:
        raise _not_written(output, why)  # before the scan, not after it
    roots = list(paths)
    config: ScanConfig = _settings(roots, config_file, max_file_size, respect_gitignore)
    if not roots:
        roots = [config.root]
    options = ScanOptions(
        use_cache=not no_cache,
        jobs=jobs,
        select=_codes(select),
        ignore=_codes(ignore) or (),
        fail_on_startup=fail_on_startup,
    )
    _check_codes(options)
    project = project_mode and bool(paths)

    def run() -> tuple[ScanResult, list[str]]:
        if project:
            return _project_scan(paths, options, config_file, max_file_size, respect_gitignore)
        return scan_paths(roots, options, config), []

    if target_version:
        target = parse_target_version(target_version)
    else:
        target = config.target_version or _DEFAULT_TARGET
    # one set of worker processes for the scan and the marks' dry runs, which import the
    # fixer while the scan's search runs
    with shared_workers(jobs, warm=_warm_fixer()):
        result, notes = run()
        if do_fix or diff:
            applied = _apply_fixes(
                result,
                unsafe=unsafe_fixes,
                diff=diff,
                target=target,
                to_err=fmt != "human",
                only=_Given(paths) if project else None,
            )
            if applied and not diff:
                result, notes = run()  # what is left, at its new lines
        marked = _marked(result, target, _Given(paths) if project else None)
    _render(marked, fmt, output)
    for note in notes:
        click.echo(note, err=True)
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
