"""Which files a scan reads, and how one file becomes facts (or a reported problem).

Discovery walks the given paths, skips the usual tool and environment folders
(.git, .venv, __pycache__, build, ...) and the config's `exclude` globs,
follows a symlink only when it stays inside the given roots, and visits each
directory once (a symlink loop ends there). A path given explicitly is
scanned whatever its suffix; below a directory only `*.py` files are.

Reading never raises: a file that cannot be read, is binary, is not valid text
in its declared (PEP 263) encoding, or does not parse becomes a `FileProblem`
with one sentence and, for a syntax error, the line.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import io
import os
import stat
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hangdoctor.scan.config import DEFAULT_MAX_FILE_SIZE, ScanConfig, format_size
from hangdoctor.scan.facts import FileFacts, FileProblem
from hangdoctor.scan.knowledge import Knowledge
from hangdoctor.scan.suppress import suppressions
from hangdoctor.scan.visit import file_facts

__all__ = [
    "SKIPPED_DIRS",
    "SourceFile",
    "content_key",
    "discover",
    "display_path",
    "facts_from_bytes",
    "module_name",
    "too_large",
]

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        "node_modules",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hangdoctor_cache",
        ".eggs",
        "build",
        "dist",
        "site-packages",
    }
)


@dataclass(frozen=True)
class SourceFile:
    """One file to scan."""

    path: Path  # as found under the given root (not resolved: symlinks keep their name)
    display: str  # as reports show it: relative to the working directory when below it
    relative: str  # relative to the project root, `/`-separated (globs, SARIF)
    module: str  # dotted module name, from the package folders (`__init__.py`) around it
    is_package: bool


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else as it is."""
    try:
        return path.absolute().relative_to(cwd).as_posix()
    except ValueError:
        return str(path)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


def _below(absolute: str, prefix: str) -> str | None:
    """`absolute` relative to the folder `prefix` (ending in a separator), `/`-separated."""
    if not absolute.startswith(prefix):
        return None
    rest = absolute[len(prefix) :]
    return rest.replace(os.sep, "/") if os.sep != "/" else rest


def module_name(path: Path, memo: dict[Path, str] | None = None) -> tuple[str, bool]:
    """(dotted module name, is a package) from the `__init__.py` files around `path`."""
    memo = {} if memo is None else memo
    stem = path.stem if path.suffix == ".py" else path.name.replace(".", "_")
    is_package = path.name == "__init__.py"
    package = _package(path.parent.absolute(), memo)
    if is_package:
        return (package or stem), True
    return (f"{package}.{stem}" if package else stem), False


def _package(folder: Path, memo: dict[Path, str]) -> str:
    if folder in memo:
        return memo[folder]
    name = ""
    if (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parent = _package(folder.parent, memo) if folder.parent != folder else ""
        name = f"{parent}.{folder.name}" if parent else folder.name
    memo[folder] = name
    return name


class _Walker:
    def __init__(self, roots: Sequence[Path], config: ScanConfig, cwd: Path) -> None:
        self.config = config
        self.cwd = cwd
        self.allowed: list[Path] = []
        for root in roots:
            try:
                self.allowed.append(root.resolve())
            except (OSError, RuntimeError):
                continue
        self.files: list[SourceFile] = []
        self.problems: list[FileProblem] = []
        self.seen_files: set[tuple[int, int]] = set()
        self.seen_dirs: set[tuple[int, int]] = set()
        self.memo: dict[Path, str] = {}
        self.packages: dict[str, str] = {}  # folder -> its dotted package name
        self.cwd_text = str(cwd.absolute())
        self.cwd_prefix = self.cwd_text.rstrip(os.sep) + os.sep
        self.root_prefix = str(config.root.absolute()).rstrip(os.sep) + os.sep

    def _inside(self, path: Path) -> bool:
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return any(real == a or a in real.parents for a in self.allowed)

    def _note(self, path: Path, message: str, kind: str = "skipped") -> None:
        self.problems.append(FileProblem(display_path(path, self.cwd), message, kind=kind))

    def _add(self, path: Path, ident: tuple[int, int]) -> None:
        if ident in self.seen_files:
            return  # the same file reached twice (two roots, a symlink)
        self.seen_files.add(ident)
        # plain strings, not pathlib: this runs once per file of a tree of thousands
        text = str(path)
        absolute = text if os.path.isabs(text) else os.path.join(self.cwd_text, text)
        relative = _below(absolute, self.root_prefix)
        if relative is None:
            relative = path.as_posix().lstrip("/")
        if self.config.exclude and self.config.excluded(relative):
            return
        display = _below(absolute, self.cwd_prefix)
        folder = os.path.dirname(absolute)
        package = self.packages.get(folder)
        if package is None:
            package = self.packages[folder] = _package(Path(folder), self.memo)
        name = os.path.basename(absolute)
        is_package = name == "__init__.py"
        stem = name[:-3] if name.endswith(".py") else name.replace(".", "_")
        module = (package or stem) if is_package else (f"{package}.{stem}" if package else stem)
        self.files.append(
            SourceFile(path, text if display is None else display, relative, module, is_package)
        )

    def root(self, path: Path) -> None:
        if not os.path.lexists(path):
            self._note(path, "does not exist.", kind="error")
            return
        try:
            st = path.stat()
        except OSError as exc:
            message = (
                "is a symlink loop."
                if exc.errno == errno.ELOOP
                else f"cannot be read ({exc.strerror})."
            )
            self._note(path, message, kind="error")
            return
        if stat.S_ISDIR(st.st_mode):
            self.walk(path)
        elif stat.S_ISREG(st.st_mode):
            self._add(path, (st.st_dev, st.st_ino))
        else:
            self._note(path, "is not a regular file.", kind="error")

    def walk(self, top: Path) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = folder.stat()
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in self.seen_dirs:
                self._note(folder, "was skipped: a symlink loop leads back to it.")
                continue
            self.seen_dirs.add(ident)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self._note(folder, f"cannot be listed ({exc.strerror}).", kind="error")
                continue
            subdirs: list[Path] = []
            for entry in entries:
                self._entry(entry, st.st_dev, subdirs)
            stack.extend(reversed(subdirs))

    def _entry(self, entry: os.DirEntry[str], dev: int, subdirs: list[Path]) -> None:
        name = entry.name
        if not entry.is_symlink():
            # the directory listing says the type: no stat call per file
            if entry.is_dir(follow_symlinks=False):
                self._subdir(Path(entry.path), name, subdirs)
            elif name.endswith(".py") and entry.is_file(follow_symlinks=False):
                self._add(Path(entry.path), (dev, entry.inode()))
            return
        path = Path(entry.path)
        if not self._inside(path):
            if os.path.exists(path):
                self._note(path, "was skipped: the symlink points outside the scanned paths.")
            elif _is_loop(path):
                self._note(path, "was skipped: it is a symlink loop.")
            return
        try:
            st = path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._note(path, "was skipped: it is a symlink loop.")
            elif name.endswith(".py"):
                self._note(path, f"cannot be read ({exc.strerror}).", kind="error")
            return
        if stat.S_ISDIR(st.st_mode):
            self._subdir(path, name, subdirs)
        elif stat.S_ISREG(st.st_mode) and name.endswith(".py"):
            self._add(path, (st.st_dev, st.st_ino))

    def _subdir(self, path: Path, name: str, subdirs: list[Path]) -> None:
        if name in SKIPPED_DIRS or name.endswith(".egg-info"):
            return
        if self.config.exclude and self.config.excluded(_relative(path, self.config.root)):
            return
        subdirs.append(path)


def _is_loop(path: Path) -> bool:
    try:
        path.stat()
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def discover(
    roots: Sequence[Path], config: ScanConfig, cwd: Path | None = None
) -> tuple[list[SourceFile], list[FileProblem]]:
    """The files to scan under `roots`, and the paths that were skipped or failed."""
    walker = _Walker(roots, config, (cwd or Path.cwd()).absolute())
    for root in roots:
        walker.root(root)
    return walker.files, walker.problems


def content_key(raw: bytes, module: str, is_package: bool) -> str:
    """The cache key of a file's facts: its bytes and the module name they are read as."""
    digest = hashlib.blake2b(raw, digest_size=20)
    digest.update(f"\0{module}\0{int(is_package)}".encode())
    return digest.hexdigest()


def decode_source(raw: bytes) -> str:
    """The text of a Python file: BOM / PEP 263 coding line, else UTF-8; ValueError if not."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        if "unknown encoding" in str(exc):
            raise ValueError(f"declares an {exc.msg}") from None
        raise ValueError(
            "is not valid UTF-8 and declares no encoding (add a `# -*- coding: NAME -*-` line)"
        ) from None
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ValueError(f"is not valid {encoding} text, the encoding it declares") from None
    return text.removeprefix("\ufeff")


def too_large(display: str, size: int, limit: int) -> FileProblem | None:
    """The problem of a file over the size limit (None when it is within it).

    Parsing costs about 200 times the file's size in memory (a 30 MB generated
    module took 6 GB and a minute), so a file over the limit is not read at
    all. It is reported as not scanned, never as clean.
    """
    if size <= limit:
        return None
    return FileProblem(
        display,
        f"is {format_size(size)}, over the {format_size(limit)} limit, so it was not scanned "
        "(raise --max-file-size or `max-file-size` in [tool.hangdoctor], or exclude it).",
    )


def facts_from_bytes(
    raw: bytes,
    display: str,
    module: str,
    is_package: bool,
    knowledge: Knowledge,
    max_bytes: int = DEFAULT_MAX_FILE_SIZE,
) -> FileFacts | FileProblem:
    """Facts of one file's bytes, or the problem that stops them; never raises."""
    if b"\0" in raw:
        return FileProblem(display, "is not Python source (it contains binary data).")
    big = too_large(display, len(raw), max_bytes)
    if big is not None:
        return big
    try:
        text = decode_source(raw)
    except ValueError as exc:
        return FileProblem(display, f"{exc}.")
    try:
        tree = ast.parse(text, filename=display)
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        col = (exc.offset - 1) if exc.offset else None
        return FileProblem(display, f"has a syntax error: {msg}.", exc.lineno, col)
    except (ValueError, MemoryError, RecursionError) as exc:
        return FileProblem(display, f"cannot be parsed ({type(exc).__name__}).")
    lines = text.splitlines()
    try:
        facts = file_facts(tree, lines, module, is_package, knowledge)
    except RecursionError:
        return FileProblem(display, "is nested too deeply to analyse.")
    table = suppressions(text)
    if table:
        facts = replace(facts, suppressions=tuple(sorted(table.items())))
    return facts
