"""Line endings: fixes work on `\\n` text; every line they did not touch keeps its own ending.

libcst keeps one default newline per module, so a mixed-ending file would not
survive a round trip byte for byte. Instead the fixers see normalised text and
the endings are put back afterwards by matching old and new lines: unchanged
lines take their original ending, changed lines the ending of the line they
replace, added lines the file's dominant ending.
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

__all__ = ["dominant_ending", "normalize", "restore", "split_lines"]

# Python's own line terminators; str.splitlines would also split on \f, \v, \x1c, ...
_EOL = re.compile(r"\r\n|\r|\n")
_ALIKE = 0.5  # how alike a new line must be to an old one to count as its rewrite
_WINDOW = 64  # how far ahead a rewritten line is looked for


def split_lines(text: str) -> list[tuple[str, str]]:
    """(content, ending) per line; the last line's ending is "" when the text has none."""
    lines: list[tuple[str, str]] = []
    pos = 0
    for m in _EOL.finditer(text):
        lines.append((text[pos : m.start()], m.group()))
        pos = m.end()
    if pos < len(text):
        lines.append((text[pos:], ""))
    return lines


def normalize(text: str) -> str:
    """`text` with every line ending replaced by `\\n`."""
    return _EOL.sub("\n", text)


def dominant_ending(text: str) -> str:
    """The most common line ending of `text` (`\\n` when it has none)."""
    counts = Counter(m.group() for m in _EOL.finditer(text))
    if not counts:
        return "\n"
    best = max(counts.values())
    # on a tie, the ending seen first wins: it is what the file starts with
    for m in _EOL.finditer(text):
        if counts[m.group()] == best:
            return m.group()
    return "\n"  # pragma: no cover - unreachable, counts is not empty


def _pair(
    old: list[str], new: list[str], i1: int, i2: int, j1: int, j2: int
) -> list[tuple[int, int]]:
    """Changed lines paired with the old line each one rewrites (in order, by likeness).

    `time.sleep(x)` -> `await asyncio.sleep(x)` pairs up; an added line such as
    `pending = set()` pairs with nothing and so takes the dominant ending.
    """
    pairs: list[tuple[int, int]] = []
    start = j1
    for i in range(i1, i2):
        best: tuple[float, int] | None = None
        for j in range(start, min(j2, start + _WINDOW)):  # bounded: big blocks stay fast
            m = SequenceMatcher(None, old[i].strip(), new[j].strip(), autojunk=False)
            if m.real_quick_ratio() < _ALIKE or m.quick_ratio() < _ALIKE:
                continue
            ratio = m.ratio()
            if ratio >= _ALIKE and (best is None or ratio > best[0]):
                best = (ratio, j)
        if best is not None:
            pairs.append((i, best[1]))
            start = best[1] + 1
    return pairs


def restore(original: str, fixed: str) -> str:
    """`fixed` (`\\n` endings) with the endings of `original` wherever its lines survive."""
    old = split_lines(original)
    new = split_lines(fixed)
    dominant = dominant_ending(original)
    endings: list[str | None] = [None] * len(new)  # None: take the dominant ending

    old_c = [c for c, _ in old]
    new_c = [c for c, _ in new]
    head = 0
    while head < min(len(old_c), len(new_c)) and old_c[head] == new_c[head]:
        endings[head] = old[head][1]
        head += 1
    tail = 0
    while (
        tail < min(len(old_c), len(new_c)) - head
        and old_c[len(old_c) - 1 - tail] == new_c[len(new_c) - 1 - tail]
    ):
        endings[len(new_c) - 1 - tail] = old[len(old_c) - 1 - tail][1]
        tail += 1

    matcher = SequenceMatcher(
        None, old_c[head : len(old_c) - tail], new_c[head : len(new_c) - tail], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                endings[head + j1 + k] = old[head + i1 + k][1]
        elif tag == "replace":
            for i, j in _pair(old_c, new_c, head + i1, head + i2, head + j1, head + j2):
                endings[j] = old[i][1]

    out: list[str] = []
    for (content, new_end), end in zip(new, endings, strict=True):
        if not new_end:
            out.append(content)  # the text ends without a newline, as the fixer left it
        else:
            out.append(content + (end or dominant))
    return "".join(out)
