"""`hangdoctor explain`: one catalog entry, or the list of them, for a terminal.

Reads like a linter's rule page: what it detects, why it hangs, an example,
the fix, and how hangdoctor recognises it. Everything comes from the `Rule`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from hangdoctor.catalog import Rule
from hangdoctor.report.prose import prose
from hangdoctor.report.terminal import code_block

__all__ = ["Evidence", "fix_python", "render_rule", "render_rule_list", "seen_in", "signature"]

_INDENT = 2


def seen_in(rule: Rule) -> list[str]:
    """Where this cause shows up: a live capture, the static scan, or both."""
    places: list[str] = []
    if rule.tasks:
        places.append(
            "Tasks of a running process: the runtime (`hangdoctor watch`, the middleware, the "
            "pytest plugin) on any Python, and `hangdoctor diagnose` from outside on CPython "
            "3.14+. A thread dump (py-spy, `hangdoctor analyze`) cannot show it."
        )
    elif rule.live:
        places.append(
            "Live capture: `hangdoctor diagnose` on a running process and `hangdoctor "
            "analyze` on a saved dump."
        )
    if rule.static:
        places.append("Static scan: `hangdoctor scan` finds it in source code.")
    if not places:
        places.append("Neither a live capture nor the static scan (documentation only).")
    return places


@dataclass(frozen=True)
class Evidence:
    """One kind of evidence that names the cause, and its items (frames, calls, methods)."""

    intro: str
    items: tuple[str, ...] = ()
    one_per_line: bool = False  # frame patterns read best one per line; names as a paragraph


def signature(rule: Rule) -> list[Evidence]:
    """How hangdoctor recognises the cause, from the rule's matchers."""
    parts: list[Evidence] = []
    if rule.frames:
        frames = tuple(p.describe() for p in rule.frames)
        parts.append(
            Evidence("Any of these library frames on the stuck thread's stack", frames, True)
        )
    if rule.calls:
        parts.append(Evidence("A call on the user's line to any of", rule.calls))
    if rule.methods:
        methods = tuple(f".{m}()" for m in rule.methods)
        parts.append(Evidence("A method call, on an object of unknown type, named any of", methods))
    if not parts and rule.tasks:
        parts.append(
            Evidence(
                "No thread-stack signature: hangdoctor reads each task's await chain, what "
                "its innermost await waits on (a lock, a pool, a future...) and who holds "
                "it, and reports a cycle at once and other waits once they pass the "
                "stuck-after threshold"
            )
        )
    elif not parts and rule.live:
        parts.append(
            Evidence(
                "No frame or call signature: hangdoctor assigns this cause from how the "
                "loop and its threads behave across samples"
            )
        )
    elif not parts:
        parts.append(Evidence("No stack signature: only the static scan finds this cause"))
    return parts


def fix_python(rule: Rule) -> str:
    """The lowest Python the fix as written runs on, as a short phrase."""
    if rule.fix_min_python:
        return f"Python >= {rule.fix_min_python}"
    return "any Python hangdoctor supports"


def _section(title: str, *body: RenderableType) -> RenderableType:
    return Group(Text(title, style="bold"), Padding(Group(*body), (0, 0, 1, _INDENT)))


@dataclass(frozen=True)
class _WholeCode:
    """Example code, each line printed whole: neither wrapped nor cut by rich.

    The page is where people copy the fix from, so a line wider than the
    terminal is left for the terminal to wrap (print with `crop=False`):
    copied, it is still one statement. It must not sit inside `Padding` or a
    table, which cut every line at the width; it indents itself.
    """

    code: str
    indent: int = _INDENT

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        margin = Segment(" " * self.indent)
        for line in code_block(self.code).split("\n", allow_blank=True):
            yield margin
            yield from line.render(console, end="")
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((len(line) for line in self.code.expandtabs(4).splitlines()), default=0)
        return Measurement(self.indent + widest, self.indent + widest)


def _code_section(title: str, *intro: RenderableType, code: str) -> RenderableType:
    head: list[RenderableType] = [Text(title, style="bold")]
    if intro:
        head.append(Padding(Group(*intro, Text()), (0, 0, 0, _INDENT)))
    return Group(*head, _WholeCode(code), Text())


def render_rule(rule: Rule) -> RenderableType:
    """The full catalog entry, for `hangdoctor explain CODE`; print it with `crop=False`.

    Without `crop=False` the console cuts example lines wider than the terminal.
    """
    title = Text()
    title.append(rule.code, style="bold red")
    title.append(f" {rule.name}", style="bold")
    head: list[RenderableType] = [title]
    if rule.family:
        head.append(Text(rule.family[:1].upper() + rule.family[1:], style="dim"))
    evidence: list[RenderableType] = []
    for part in signature(rule):
        evidence.append(Text(part.intro + (":" if part.items else ".")))
        if part.one_per_line:
            evidence.extend(Padding(prose(f"`{i}`"), (0, 0, 0, _INDENT)) for i in part.items)
        elif part.items:
            listed = prose(", ".join(f"`{i}`" for i in part.items))
            evidence.append(Padding(listed, (0, 0, 0, _INDENT)))
    return Group(
        *head,
        Text(),
        _section("What it detects", prose(rule.summary)),
        _section("Why it hangs", prose(rule.why)),
        _code_section("Example", code=rule.bad),
        _code_section("Fix", prose(rule.fix), code=rule.good),
        _section(f"Fix needs {fix_python(rule)}"),
        _section("Automatic fix", prose(rule.fix_safety or "No automatic fix.")),
        _section("Seen in", *(prose(p) for p in seen_in(rule))),
        _section("Stack signature", *evidence),
    )


def render_rule_list(rules: Iterable[Rule]) -> RenderableType:
    """A table of every entry (code, name, summary), for `hangdoctor explain --list`."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("code", style="bold red", no_wrap=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("summary", ratio=1)
    for rule in rules:
        table.add_row(rule.code, rule.name, prose(rule.summary))
    return table
