"""Suppression comments: `# noqa`, `# noqa: HD201`, `# hangdoctor: ignore[HD201]`.

Only comments count: a `#` inside a string on the same line (`"# noqa"`) does
not. Lines are read one by one, which is much cheaper than tokenizing the
file; the one thing that misses is a line of a multi-line string that looks
like a suppression, and such a line holds no code to report anyway. A `# noqa`
listing only other tools' codes (`# noqa: E501`) does not silence hangdoctor; a
bare `# noqa` or `# hangdoctor: ignore` silences all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["comment_start", "is_suppressed", "suppressions"]

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z0-9_,\s]+))?", re.IGNORECASE)
_IGNORE = re.compile(r"#\s*hangdoctor\s*:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_CODE = re.compile(r"[A-Za-z]+[0-9]+")


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.upper() for c in _CODE.findall(text))


def _parse_comment(comment: str) -> tuple[str, ...] | None:
    """Codes the comment silences; () for all; None when it is no suppression."""
    found: list[str] = []
    matched = False
    for pattern in (_NOQA, _IGNORE):
        for m in pattern.finditer(comment):
            matched = True
            codes = m.group("codes")
            if codes is None or not _codes(codes):
                return ()
            found.extend(_codes(codes))
    return tuple(dict.fromkeys(found)) if matched else None


def comment_start(line: str) -> int | None:
    """Where the comment of a line of code starts (its `#`), skipping strings; None if none."""
    quote: str | None = None
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif c == "#":
            return i
        elif c in "\"'":
            quote = line[i : i + 3] if line.startswith(c * 3, i) else c
            i += len(quote)
            continue
        i += 1
    return None


def suppressions(text: str) -> dict[int, tuple[str, ...]]:
    """Line -> codes silenced there (() means every code), from the comments of `text`."""
    lowered = text.lower()
    if "noqa" not in lowered and "hangdoctor" not in lowered:
        return {}  # the common case
    out: dict[int, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        low = line.lower()
        if "noqa" not in low and "hangdoctor" not in low:
            continue
        start = comment_start(line)
        if start is None:
            continue
        codes = _parse_comment(line[start:])
        if codes is not None:
            out[number] = codes
    return out


def is_suppressed(table: Mapping[int, tuple[str, ...]], line: int, code: str) -> bool:
    """Whether `code` is silenced on `line`."""
    codes = table.get(line)
    if codes is None:
        return False
    return codes == () or code in codes
