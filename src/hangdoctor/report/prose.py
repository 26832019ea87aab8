"""Catalog paragraphs on a terminal: their `inline code` styled, the text as written.

Its own module so that the scan's report, which shows catalog text but no
diagnosis, does not import the diagnosis renderer (`terminal`) and all it needs.
"""

from __future__ import annotations

import re

from rich.text import Text

__all__ = ["CODE_STYLE", "prose"]

CODE_STYLE = "bold cyan"
_INLINE_CODE = re.compile(r"`([^`]+)`")


def prose(text: str, style: str = "") -> Text:
    """A catalog paragraph with its `inline code` styled (backticks kept for plain text)."""
    out = Text(style=style)
    pos = 0
    for match in _INLINE_CODE.finditer(text):
        out.append(text[pos : match.start()])
        out.append(match.group(0), style=CODE_STYLE)
        pos = match.end()
    out.append(text[pos:])
    return out
