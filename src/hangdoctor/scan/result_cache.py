"""The whole-tree result cache: an unchanged tree's findings without loading any facts.

The facts cache saves parsing; a warm scan still has to load every file's facts
and rebuild the call graph, because a finding in one file can come from a
change in another. When nothing at all has changed — the same files with the
same size, mtime, ctime and inode, the same settings, the same hangdoctor —
the findings are the same too: this cache keeps the last few results keyed by
exactly that, so a repeated scan (a pre-commit hook, an editor on save) costs
one `stat` per file.

Stored next to the facts cache, JSON, written atomically; a missing or damaged
file is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hangdoctor.scan.cache import write_quietly

__all__ = ["ResultCache", "tree_key"]

_FORMAT = 1
_KEEP = 8  # results of this many different trees or settings (paths scanned in turn)


def tree_key(salt: str, settings: str, files: Sequence[tuple[str, str, str, bool]]) -> str | None:
    """A key for these files as they are now: (path, display, module, is_package) each.

    None when a file cannot be looked at: the scan then takes the long way and
    reports it.
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{_FORMAT}\0{salt}\0{settings}".encode())
    for path, display, module, is_package in files:
        try:
            st = os.stat(path)
        except OSError:
            return None
        digest.update(
            f"\0{display}\0{module}\0{is_package:d}\0{st.st_size}\0{st.st_mtime_ns}"
            f"\0{st.st_ctime_ns}\0{st.st_ino}".encode()
        )
    return digest.hexdigest()


class ResultCache:
    """`results-<salt>.json`: tree key -> the scan's findings, problems and chains."""

    def __init__(self, directory: Path | None, salt: str) -> None:
        self.path = directory / f"results-{salt}.json" if directory else None

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return {}
        results = data.get("results")
        return results if isinstance(results, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._read().get(key)
        return found if isinstance(found, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Keep `value` under `key`, dropping the oldest results past the limit."""
        if self.path is None:
            return
        results = self._read()
        results.pop(key, None)
        results[key] = value
        for old in list(results)[: max(0, len(results) - _KEEP)]:
            del results[old]
        payload = json.dumps({"format": _FORMAT, "results": results}, separators=(",", ":"))
        write_quietly(self.path, payload)
