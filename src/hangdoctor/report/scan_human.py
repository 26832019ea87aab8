"""`hangdoctor scan` for people: findings grouped by file, the source, the chain, the fix.

Each finding shows its place, message and source excerpt; a chained finding
lists every hop with its file:line; then the catalog's fix in one line. The
catalog's "why" is printed once per code at the end, so a file with ten
`time.sleep` calls does not repeat a paragraph ten times.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from hangdoctor.catalog import get_rule
from hangdoctor.model import Finding
from hangdoctor.report.prose import prose
from hangdoctor.report.scan_concise import fix_label
from hangdoctor.scan import ScanResult
from hangdoctor.scan.startup import reason

__all__ = ["render_scan_human", "summary_line"]

_CONTEXT = 1  # lines of source shown above and below
_INDENT = 2
_STYLE = {"error": "bold red", "warning": "bold yellow"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(result: ScanResult, fixable: int = 0) -> str:
    """One line: what was found, in how many files, how fast, how much from the cache."""
    stats = result.stats
    files = {f.file for f in result.findings}
    if result.findings:
        head = f"Found {_plural(len(result.findings), 'problem')} in {_plural(len(files), 'file')}"
    elif result.errors:
        head = "No problems found in what could be scanned"  # not an all-clear
    else:
        head = "No problems found"
    cache = f", {stats.cached} from cache" if stats.cached else ""
    tail = (
        f"{_plural(stats.files, 'file')} scanned ({stats.parsed} parsed{cache}) "
        f"in {stats.seconds:.2f} s"
    )
    errors = len(result.errors)
    failed = f"; {_plural(errors, 'file')} could not be scanned" if errors else ""
    fix = f"; {fixable} fixable with `--fix`" if fixable else ""
    once = len(result.lifecycle)
    apart = f"; {once} more in startup/shutdown code, shown apart" if once else ""
    return f"{head}; {tail}{failed}{fix}{apart}."


def _excerpt(lines: list[str], line: int, col: int) -> RenderableType:
    start = max(1, line - _CONTEXT)
    end = min(len(lines), line + _CONTEXT)
    width = len(str(end))
    out = Text()
    for n in range(start, end + 1):
        marker = ">" if n == line else " "
        style = "" if n == line else "dim"
        out.append(f"{marker} {n:>{width}} │ ", style="dim" if n != line else "bold")
        out.append(lines[n - 1].rstrip().expandtabs(4), style=style)
        out.append("\n")
        if n == line:
            out.append(" " * (width + 2) + " │ ", style="dim")
            caret = len(lines[n - 1][:col].expandtabs(4))
            out.append(" " * caret + "^", style="bold red")
            out.append("\n")
    out.rstrip()
    # a source line too wide for the terminal ends in "…": wrapped, it reads as two statements
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


def _finding(finding: Finding, result: ScanResult, phase: str | None = None) -> RenderableType:
    rule = get_rule(finding.code)
    col = (finding.col or 0) + 1
    head = Text()
    if phase:
        head.append(f"[{phase}] {finding.file}:", style="cyan")
    head.append(f"{finding.line}:{col}", style="cyan")
    head.append("  ")
    head.append(finding.code, style=_STYLE.get(rule.severity, "bold"))
    mark = fix_label(result, finding)
    if mark:
        head.append(f" {mark}", style="dim")
    head.append("  ")
    head.append_text(prose(finding.message))
    parts: list[RenderableType] = [head]
    body: list[RenderableType] = []
    if finding.function:
        body.append(Text(f"in {finding.function}", style="dim"))
    lines = result.source_lines(finding.file)
    if 0 < finding.line <= len(lines):
        body.append(_excerpt(lines, finding.line, finding.col or 0))
    steps = result.chain_of(finding)
    if steps:
        chain = Text("chain:\n", style="bold")
        for i, step in enumerate(steps):
            chain.append(f"  {'  ' * i}{step.function}", style="")
            chain.append(f"  {step.file}:{step.line}", style="cyan")
            chain.append(f"  {step.call}\n", style="dim")
        chain.rstrip()
        body.append(chain)
    fix = Text("fix: ", style="bold green")
    fix.append_text(prose(rule.fix))
    body.append(fix)
    parts.append(Padding(Group(*body), (0, 0, 1, _INDENT + 2)))
    return Group(*parts)


def render_scan_human(result: ScanResult) -> RenderableType:
    """The whole report: files with findings, the rules met, problems, and a summary.

    `[*]` / `[unsafe fix]` are the marks the scan command put on `result`
    (hangdoctor.fix.marks): the fixer's own verdict for that place.
    """
    out: list[RenderableType] = []
    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_file.setdefault(finding.file, []).append(finding)
    for file, findings in by_file.items():
        out.append(Text(file, style="bold underline"))
        out.extend(Padding(_finding(f, result), (0, 0, 0, _INDENT)) for f in findings)
    if result.lifecycle:
        out.append(Text("Startup and shutdown code (not request hangs)", style="bold"))
        for phase in sorted({f.phase or "" for f in result.lifecycle}):
            out.append(Padding(Text(f"{phase}: {reason(phase)}", style="dim"), (0, 0, 0, _INDENT)))
        for f in result.lifecycle:
            # `--fix` leaves them alone: they carry no fix marks (fix/marks.py)
            out.append(Padding(_finding(f, result, f.phase), (0, 0, 0, _INDENT)))
    codes = sorted({f.code for f in (*result.findings, *result.lifecycle)})
    if codes:
        out.append(Text("Why these hang", style="bold"))
        for code in codes:
            rule = get_rule(code)
            title = Text()
            title.append(code, style=_STYLE.get(rule.severity, "bold"))
            title.append(f" {rule.name}: ", style="bold")
            title.append_text(prose(rule.summary))
            why = Padding(prose(rule.why), (0, 0, 0, _INDENT))
            more = Padding(Text(f"hangdoctor explain {code}", style="dim"), (0, 0, 1, _INDENT))
            out.append(Padding(Group(title, why, more), (0, 0, 0, _INDENT)))
    if result.problems:
        out.append(Text("Not scanned", style="bold"))
        for problem in result.problems:
            where = problem.path + (f":{problem.line}" if problem.line else "")
            line = Text("  ")
            line.append(where, style="cyan")
            line.append(f" {problem.message}", style="red" if problem.kind == "error" else "dim")
            out.append(line)
        out.append(Text())
    fix_count = sum(1 for f in result.findings if result.fix_of(f) == "safe")
    out.append(Text(summary_line(result, fix_count), style="bold"))
    return Group(*out)
