"""The per-file facts cache: a second scan of an unchanged tree parses nothing.

Entries are keyed by a hash of the file's bytes and module name; the cache
file itself is named after everything else the facts depend on: the
hangdoctor version, the Python version (its parser), the source of the scanner
and the catalog, and the project's extra blocking calls (`Knowledge`). To skip
even reading unchanged files, the cache also remembers each path's size,
mtime, ctime and inode with the content hash they had.

It lives in `.hangdoctor_cache/` in the project root (with a `.gitignore` of
its own), or in `$XDG_CACHE_HOME/hangdoctor/` when the project is read-only.
The file is JSON, written atomically; a missing, stale or damaged cache is
simply rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from hangdoctor import __version__
from hangdoctor.outfile import write_atomic
from hangdoctor.scan.facts import FileFacts, FileProblem, facts_from_json, facts_to_json

__all__ = [
    "CACHE_DIR_NAME",
    "FactCache",
    "cache_directory",
    "code_fingerprint",
    "write_quietly",
]

CACHE_DIR_NAME = ".hangdoctor_cache"
_FORMAT = 1
_MAX_ENTRIES = 50_000


@functools.lru_cache(maxsize=8)
def sources_fingerprint(folders: tuple[Path, ...], salt: str = "") -> str:
    """A hash of hangdoctor's version, this Python and the `.py` sources in `folders`:
    a cache keyed by it is dropped whenever the code that filled it changes."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{__version__}\0{sys.version_info[:2]}\0{salt}".encode())
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(path.name.encode())
    return digest.hexdigest()


def code_fingerprint() -> str:
    """A hash of the scanner's and the catalog's own source: new code, new cache."""
    here = Path(__file__).resolve().parent
    return sources_fingerprint((here, here.parent / "catalog"), str(_FORMAT))


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def cache_directory(project_root: Path) -> Path | None:
    """Where the cache lives: the project's `.hangdoctor_cache`, else the user cache dir."""
    local = project_root / CACHE_DIR_NAME
    if _writable(local):
        _mark(local)
        return local
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.blake2b(str(project_root).encode(), digest_size=8).hexdigest()
    shared = base / "hangdoctor" / digest
    return shared if _writable(shared) else None


def _mark(folder: Path) -> None:
    """Keep the cache out of git and out of backups, like other tools' caches."""
    for name, text in (
        (".gitignore", "# created by hangdoctor\n*\n"),
        (
            "CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55\n# created by hangdoctor\n",
        ),
    ):
        path = folder / name
        if not path.exists():
            with contextlib.suppress(OSError):
                path.write_text(text, encoding="utf-8")


class FactCache:
    """One cache file: content key -> facts, path -> (stat, content key)."""

    def __init__(self, directory: Path | None, salt: str) -> None:
        self.path = directory / f"facts-{salt}.json" if directory else None
        self._entries: dict[str, Any] = {}
        self._stats: dict[str, list[Any]] = {}
        self._used: set[str] = set()
        self._dirty = False
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return
        entries, stats = data.get("entries"), data.get("stats")
        if isinstance(entries, dict) and isinstance(stats, dict):
            self._entries, self._stats = entries, stats

    def key_from_stat(self, path: str, st: os.stat_result) -> str | None:
        """The content key remembered for `path` if the file has not changed since."""
        known = self._stats.get(path)
        if known and known[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]:
            key = known[4]
            return key if isinstance(key, str) and key in self._entries else None
        return None

    def remember_stat(self, path: str, st: os.stat_result, key: str) -> None:
        value = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, key]
        if self._stats.get(path) != value:
            self._stats[path] = value
            self._dirty = True

    def get(self, key: str) -> FileFacts | FileProblem | None:
        raw = self._entries.get(key)
        if raw is None:
            self.misses += 1
            return None
        try:
            facts = facts_from_json(raw)
        except (ValueError, TypeError, IndexError, KeyError):
            self.misses += 1
            return None
        self._used.add(key)
        self.hits += 1
        return facts

    def put(self, key: str, facts: FileFacts | FileProblem) -> None:
        self._entries[key] = facts_to_json(facts)
        self._used.add(key)
        self._dirty = True

    def save(self) -> None:
        """Write the cache if anything changed; failures only cost the next scan time."""
        if self.path is None or not self._dirty:
            return
        entries = self._entries
        if len(entries) > _MAX_ENTRIES:  # keep this run's entries, drop the oldest others
            keep = [k for k in entries if k in self._used]
            others = [k for k in entries if k not in self._used]
            room = max(0, _MAX_ENTRIES - len(keep))
            entries = {k: entries[k] for k in (*others[len(others) - room :], *keep)}
            live = set(entries)
            self._stats = {p: v for p, v in self._stats.items() if v[4] in live}
        payload = json.dumps(
            {"format": _FORMAT, "entries": entries, "stats": self._stats},
            separators=(",", ":"),
        )
        write_quietly(self.path, payload)


def write_quietly(path: Path, text: str) -> None:
    """Replace a cache file atomically; a failure (full disk, read-only) only costs time."""
    with contextlib.suppress(OSError):
        write_atomic(path, text, durable=False)
