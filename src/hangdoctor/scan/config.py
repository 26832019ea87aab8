"""`[tool.hangdoctor]` in pyproject.toml: which codes, which files, which extra blocking calls.

The settings come from `--config FILE`, else from the nearest pyproject.toml
above the first scanned path that has a `[tool.hangdoctor]` table. The project
root (where globs are anchored and the cache lives) is that file's directory,
or without one the nearest directory holding a pyproject.toml or `.git`.

    [tool.hangdoctor]
    select = ["HD1", "HD2"]           # code prefixes; default: every scan code
    ignore = ["HD501"]
    exclude = ["migrations", "gen/*_pb2.py"]
    per-file-ignores = { "tests/**" = ["HD201"] }
    blocking-calls = { "mylib.fetch" = "HD202", "vendor.Client.*" = "HD202" }
    blocking-methods = { "fetch_sync" = "HD202" }
    target-version = "py39"           # lowest Python the fixes may use
    max-file-size = "2MB"             # bigger files are not scanned (generated code)
    respect-gitignore = true          # skip what git ignores (see scan/files.py)

A pyproject.toml that mentions hangdoctor but is not valid TOML is an error
naming the file and line: silently going on to a parent directory's settings
would scan with rules nobody chose.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hangdoctor.catalog import all_rules
from hangdoctor.errors import HangdoctorError
from hangdoctor.scan.knowledge import PROPAGATING

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "KEYS",
    "ScanConfig",
    "ScanConfigError",
    "format_size",
    "load_config",
    "matches_glob",
    "parse_size",
    "parse_target_version",
]

KEYS = (
    "select",
    "ignore",
    "exclude",
    "per-file-ignores",
    "blocking-calls",
    "blocking-methods",
    "target-version",
    "max-file-size",
    "respect-gitignore",
)
DEFAULT_MAX_FILE_SIZE = 2 * 1024 * 1024  # a 2 MB module takes ~5 s and ~420 MB to analyse
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_VERSION = re.compile(r"^(?:py)?3\.?(\d{1,2})$")
_REQUIRES = re.compile(r">=\s*3\.(\d{1,2})")
_STATIC = frozenset(r.code for r in all_rules() if r.static)


class ScanConfigError(HangdoctorError):
    """The `[tool.hangdoctor]` settings (or a scan option) are not valid."""


@dataclass(frozen=True)
class ScanConfig:
    """The settings of one scan."""

    root: Path  # project root: globs are relative to it, the cache lives in it
    source: Path | None = None  # the file the settings were read from
    select: tuple[str, ...] = ()  # code prefixes; () = every scan code
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    blocking_calls: tuple[tuple[str, str], ...] = ()
    blocking_methods: tuple[tuple[str, str], ...] = ()
    target_version: tuple[int, int] | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes; bigger files are reported, not read
    respect_gitignore: bool = True  # skip what .gitignore & co. ignore below a given folder

    def enabled(self, code: str) -> bool:
        """Whether `code` is selected and not ignored."""
        if code not in _STATIC:
            return False
        if self.select and not any(_prefix_match(p, code) for p in self.select):
            return False
        return not any(_prefix_match(p, code) for p in self.ignore)

    def ignored_in(self, relative: str, code: str) -> bool:
        """Whether per-file-ignores silence `code` in the file at `relative` (to the root)."""
        for pattern, codes in self.per_file_ignores:
            if matches_glob(pattern, relative) and any(_prefix_match(c, code) for c in codes):
                return True
        return False

    def excluded(self, relative: str) -> bool:
        """Whether the path (relative to the root, `/`-separated) is excluded."""
        return any(matches_glob(p, relative) for p in self.exclude)


def _prefix_match(prefix: str, code: str) -> bool:
    return prefix == "ALL" or code.startswith(prefix)


def parse_target_version(text: str) -> tuple[int, int]:
    """`py39`, `3.9` or `39` -> (3, 9); ScanConfigError otherwise."""
    m = _VERSION.match(text.strip().lower())
    if not m:
        raise ScanConfigError(f"{text!r} is not a Python version.", "Write it like py39 or 3.9.")
    return (3, int(m.group(1)))


def parse_size(text: str | int) -> int:
    """`2MB`, `500k`, `1.5 MiB` or a number of bytes -> bytes (units of 1024); ScanConfigError."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text > 0:
            return text
    elif isinstance(text, str):
        m = _SIZE.match(text.strip().lower())
        if m:
            size = int(float(m.group(1)) * _UNITS[m.group(2)[:1]])
            if size > 0:
                return size
    raise ScanConfigError(
        f"{text!r} is not a file size.", "Write it like 2MB, 500KB or a number of bytes."
    )


def format_size(size: int) -> str:
    """Bytes as people read them: "2 MB", "512 KB", "1.5 MB"."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    cached = _GLOB_CACHE.get(pattern)
    if cached is not None:
        return cached
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    compiled = re.compile("".join(out) + r"\Z")
    _GLOB_CACHE[pattern] = compiled
    return compiled


def matches_glob(pattern: str, relative: str) -> bool:
    """gitignore-like: a pattern with no `/` matches any path component (a file or a
    directory anywhere); one with a `/` is anchored at the root; `**` spans directories.
    A pattern that matches a directory matches everything below it."""
    pattern = pattern.strip().removeprefix("./")
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    if not pattern:
        return False
    regex = _glob_regex(pattern)
    parts = relative.strip("/").split("/")
    if anchored:
        return any(regex.match("/".join(parts[: i + 1])) for i in range(len(parts)))
    return any(regex.match(part) for part in parts)


def _find_root(start: Path) -> tuple[Path, Path | None]:
    """(project root, pyproject.toml with [tool.hangdoctor] or None)."""
    here = start if start.is_dir() else start.parent
    here = here.resolve()
    fallback: Path | None = None
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            if fallback is None:
                fallback = folder
            if _has_table(candidate):
                return folder, candidate
        elif fallback is None and (folder / ".git").exists():
            fallback = folder
    return (fallback or here), None


def _has_table(path: Path) -> bool:
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    if b"hangdoctor" not in raw:
        return False  # no table of ours can be in it, valid TOML or not
    tool = _read_toml(path).get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("hangdoctor"), dict)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ScanConfigError(
            f"Cannot read the config file {path} ({exc.strerror}).",
            "Check the path given to --config.",
        ) from None
    except UnicodeDecodeError:
        raise ScanConfigError(
            f"{path} is not valid TOML: it is not UTF-8 text.", "Save the file as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        where = str(exc)  # ends in "(at line N, column M)" or "(at end of document)"
        if "line" not in where:
            lines = path.read_bytes().count(b"\n") + 1
            where = f"{where.removesuffix(')')}, line {lines})"
        raise ScanConfigError(
            f"{path} is not valid TOML: {where}.",
            "Fix the syntax there: hangdoctor takes no settings from a file it cannot read "
            "(nor from a pyproject.toml further up).",
        ) from None
    return data


def _strings(value: Any, key: str, where: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScanConfigError(
            f"`{key}` in {where} must be a list of strings.", f'Write it like {key} = ["..."].'
        )
    return tuple(value)


def _codes(value: Any, key: str, where: Path, static: frozenset[str]) -> tuple[str, ...]:
    codes = tuple(c.strip().upper() for c in _strings(value, key, where))
    for c in codes:
        if c != "ALL" and not any(code.startswith(c) for code in static):
            raise ScanConfigError(
                f"`{key}` in {where} names {c!r}, which matches no scan code.",
                "Use codes or prefixes of: " + ", ".join(sorted(static)) + ".",
            )
    return codes


def _table(value: Any, key: str, where: Path) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ScanConfigError(
            f"`{key}` in {where} must be a table.", f'Write it like {key} = {{ "name" = "..." }}.'
        )
    return value


def _blocking(value: Any, key: str, where: Path) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, code in _table(value, key, where).items():
        if not isinstance(code, str) or code.strip().upper() not in PROPAGATING:
            raise ScanConfigError(
                f"`{key}` in {where} maps {name!r} to {code!r}, which is not a blocking code.",
                "Use one of " + ", ".join(sorted(PROPAGATING)) + ".",
            )
        out.append((name.strip(), code.strip().upper()))
    return tuple(out)


def config_from_table(table: Mapping[str, Any], root: Path, source: Path) -> ScanConfig:
    """A ScanConfig from the `[tool.hangdoctor]` table (or a --config file's top level)."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ScanConfigError(
            f"Unknown setting(s) {', '.join(unknown)} in {source}.",
            "Known settings: " + ", ".join(KEYS) + " (see docs/scan.md).",
        )
    static = _STATIC
    pfi: list[tuple[str, tuple[str, ...]]] = []
    for pattern, codes in _table(
        table.get("per-file-ignores", {}), "per-file-ignores", source
    ).items():
        pfi.append((pattern, _codes(codes, f"per-file-ignores.{pattern}", source, static)))
    target = table.get("target-version")
    if target is not None and not isinstance(target, str):
        raise ScanConfigError(
            f"`target-version` in {source} must be a string.",
            'Write it like target-version = "py39".',
        )
    size = table.get("max-file-size")
    gitignore = table.get("respect-gitignore", True)
    if not isinstance(gitignore, bool):
        raise ScanConfigError(
            f"`respect-gitignore` in {source} is {gitignore!r}, not true or false.",
            "Write it like respect-gitignore = false (no quotes).",
        )
    return ScanConfig(
        root=root,
        source=source,
        select=_codes(table.get("select", []), "select", source, static),
        ignore=_codes(table.get("ignore", []), "ignore", source, static),
        exclude=_strings(table.get("exclude", []), "exclude", source),
        per_file_ignores=tuple(pfi),
        blocking_calls=_blocking(table.get("blocking-calls", {}), "blocking-calls", source),
        blocking_methods=_blocking(table.get("blocking-methods", {}), "blocking-methods", source),
        target_version=parse_target_version(target) if target else None,
        max_file_size=_size(size, source) if size is not None else DEFAULT_MAX_FILE_SIZE,
        respect_gitignore=gitignore,
    )


def _size(value: Any, source: Path) -> int:
    try:
        return parse_size(value)
    except ScanConfigError:
        raise ScanConfigError(
            f"`max-file-size` in {source} is {value!r}, not a file size.",
            'Write it like max-file-size = "2MB" (or a number of bytes).',
        ) from None


def _requires_python(path: Path | None) -> tuple[int, int] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    project = data.get("project")
    spec = project.get("requires-python") if isinstance(project, dict) else None
    m = _REQUIRES.search(spec) if isinstance(spec, str) else None
    return (3, int(m.group(1))) if m else None


def load_config(paths: Sequence[Path], config_file: Path | None = None) -> ScanConfig:
    """The settings for a scan of `paths` (the first one decides where to look)."""
    if config_file is not None:
        data = _read_toml(config_file)
        tool = data.get("tool")
        table = tool.get("hangdoctor") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            table = {k: v for k, v in data.items() if k != "tool"}
        root = config_file.resolve().parent
        config = config_from_table(table, root, config_file)
    else:
        start = paths[0] if paths else Path.cwd()
        root, pyproject = _find_root(start if start.exists() else Path.cwd())
        if pyproject is None:
            config = ScanConfig(root=root)
        else:
            tool = _read_toml(pyproject).get("tool", {})
            config = config_from_table(tool["hangdoctor"], root, pyproject)
    if config.target_version is None:
        wanted = _requires_python(config.root / "pyproject.toml")
        if wanted is not None:
            config = replace(config, target_version=wanted)
    return config
