"""The console every command prints through: what rich pads a line with is dropped, text is not."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.padding import Padding
from rich.segment import ControlType, Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from hangdoctor.report.console import TrimmedConsole, trim_line_ends


def texts(segments: list[Segment]) -> str:
    return "".join(s.text for s in trim_line_ends(segments))


def test_blanks_before_a_line_break_are_dropped() -> None:
    """Trailing spaces go, in one segment or spread over several, also inside one segment."""
    plain = [Segment("word   "), Segment("  "), Segment("\n"), Segment("next\n")]
    assert texts(plain) == "word\nnext\n"
    assert texts([Segment("a  \nb  \n")]) == "a\nb\n"


def test_blanks_between_words_and_columns_stay() -> None:
    """Blanks followed by text on the same line separate words or align columns: kept."""
    assert texts([Segment("a"), Segment("   "), Segment("b"), Segment("\n")]) == "a   b\n"
    assert texts([Segment("  indented\n")]) == "  indented\n"


def test_coloured_blanks_and_an_open_line_stay() -> None:
    """Blanks with a background colour are visible (a badge); the last line may go on."""
    badge = Style(bgcolor="red")
    assert texts([Segment(" FAIL ", badge), Segment("\n")]) == " FAIL \n"
    assert texts([Segment("prompt: ")]) == "prompt: "


def test_styles_and_control_segments_survive() -> None:
    """A kept segment keeps its style; control segments pass through in place."""
    bold = Style(bold=True)
    out = list(trim_line_ends([Segment("x  ", bold), Segment("\n")]))
    assert out[0] == Segment("x", bold)
    control = Segment("\x1b[1A", None, [(ControlType.CURSOR_UP, 1)])
    assert control in list(trim_line_ends([Segment("a "), control, Segment("\n")]))


def _print(console_type: type[Console], renderable: Group) -> list[str]:
    console = console_type(record=True, width=60, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def test_the_console_drops_the_padding_rich_adds() -> None:
    """Padding, a table and wrapped text: rich pads each line to the width; TrimmedConsole
    prints the same lines without it, and aligned exactly as before."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column()
    grid.add_row("loop", "pid 1 MainThread")
    grid.add_row("where", "api/routes/stream.py:34 in gen")
    layout = Group(Padding(Text("indented paragraph " * 6), (0, 0, 1, 2)), grid)
    padded = _print(Console, layout)
    trimmed = _print(TrimmedConsole, layout)
    assert any(line != line.rstrip() for line in padded)
    assert trimmed == [line.rstrip() for line in padded]
