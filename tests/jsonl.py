"""Read a JSON Lines file that a running process is still appending to.

`watch --out` appends each record with one write, but a reader can still catch a
record half-copied into the file: only lines that end with a newline are whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["whole_records"]


def whole_records(path: Path) -> list[dict[str, Any]]:
    """The records of every complete line of `path` ([] while it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    whole = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line.strip()]
