"""The rich Console every hangdoctor command prints through: no line ends in padding.

rich lays a block out to the console's width and fills what is left of each
line with spaces (`Padding`, table cells, `Syntax`, word-wrapped text). A
terminal shows nothing of them, but they are there in everything a person
copies, pipes or saves: 46 of the 57 lines of `hangdoctor explain HD101` at
200 columns ended in spaces, and 15 KB of a 23 KB scan report were spaces.
Instead of asking every renderer to avoid each way rich pads, the console
drops the blanks before each line break of whatever it renders, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.style import Style

__all__ = ["TrimmedConsole", "trim_line_ends"]


def _visible_blank(style: Style | None) -> bool:
    """Whether blanks in `style` can be seen: a background colour of their own."""
    return style is not None and style.bgcolor is not None and not style.bgcolor.is_default


def trim_line_ends(segments: Iterable[Segment]) -> Iterator[Segment]:
    """`segments` without the spaces that stand right before a line break.

    Blanks are held back until the next visible character (then they are kept,
    they separate words or align columns) or the next line break (then they are
    dropped). Blanks with a background colour of their own are text, not
    padding; blanks at the very end of the stream are kept, since the next
    print may continue that line.
    """
    held: list[Segment] = []
    for segment in segments:
        if segment.control:
            yield from held
            held.clear()
            yield segment
            continue
        parts = segment.text.split("\n")
        for i, part in enumerate(parts):
            if i:  # a line break: what was held back was padding
                held.clear()
                yield Segment.line()
            if not part:
                continue
            stripped = part.rstrip(" ")
            if _visible_blank(segment.style):
                stripped = part
            if stripped:
                yield from held
                held.clear()
                yield Segment(stripped, segment.style)
            if len(stripped) < len(part):
                held.append(Segment(part[len(stripped) :], segment.style))
    yield from held


class TrimmedConsole(Console):
    """A `rich.console.Console` whose output never ends a line with padding.

    Everything printed goes through `render`, nested renderables included, so
    this one override covers panels, tables, padding and wrapped text alike;
    renderers that lay columns out pad their cells again themselves.
    """

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        """Render as rich does, minus the spaces before each line break."""
        return trim_line_ends(super().render(renderable, options))
