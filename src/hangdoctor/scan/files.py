"""Which files a scan reads, and how one file becomes facts (or a reported problem).

Discovery walks the given paths, skips the usual tool and environment folders
(.git, .venv, __pycache__, build, ...), the config's `exclude` globs and what
git ignores, follows a symlink only when it stays inside the given roots, and
visits each directory once (a symlink loop ends there). A path given
explicitly is scanned whatever its suffix; below a directory only `*.py` files
are.

Ignored files are found by reading the ignore files with `pathspec`
(`GitIgnoreSpec`, git's own matching rules, negations included) while the
walk goes, not by asking `git ls-files`: the walk then never enters an ignored
folder (a 100 000-file `data/` costs one check), it works the same where no
git binary is installed (a slim container image, a CI step) with no
subprocess to time out, and the symlink, loop and `exclude` handling above
stays the one listing there is. What git reads is read: `.gitignore` in every
folder from the top of the work tree down (a deeper file wins, and the last
matching line in a file), `.git/info/exclude`, and the global excludes file
(`core.excludesFile` from the user's or the repository's git config, else
`$XDG_CONFIG_HOME/git/ignore`). As with git, ripgrep and ruff, the rules only
apply inside a git work tree: a copied or unpacked tree without `.git` has no
ignored files. A repository nested in the scanned tree (a folder with its own
`.git`) follows its own rules only. Two differences from `git ls-files`: a
file that is tracked but matches a pattern (`git add -f`) is skipped, as ruff
does; and a file or folder named on the command line is scanned even when
ignored (the `.gitignore` files inside a named folder still apply).

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
import re
import stat
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hangdoctor.scan.config import DEFAULT_MAX_FILE_SIZE, ScanConfig, format_size
from hangdoctor.scan.facts import FileFacts, FileProblem
from hangdoctor.scan.knowledge import Knowledge
from hangdoctor.scan.startup import REGISTRATION_WORDS
from hangdoctor.scan.suppress import suppressions
from hangdoctor.scan.visit import file_facts, file_index

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

__all__ = [
    "SKIPPED_DIRS",
    "SourceFile",
    "content_key",
    "discover",
    "display_path",
    "facts_from_bytes",
    "line_count",
    "may_matter",
    "module_name",
    "project_root",
    "too_large",
    "word_at",
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


_PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


def project_root(path: Path) -> Path:
    """The project `path` belongs to: the nearest folder at or above it holding a
    pyproject.toml, setup.cfg, setup.py or `.git` (the file's own folder without one)."""
    here = path.absolute()
    here = here if here.is_dir() else here.parent
    here = here.resolve()
    for folder in (here, *here.parents):
        if any(os.path.lexists(folder / marker) for marker in _PROJECT_MARKERS):
            return folder
    return here


# What one ignore file says, and the folder its patterns are relative to (an
# absolute path ending in "/"); outermost first, so the deepest file is asked first.
_Rules = tuple[tuple[str, "GitIgnoreSpec"], ...]
_SECTION = re.compile(r"^\s*\[\s*([A-Za-z0-9.-]+)")
_EXCLUDES_FILE = re.compile(r"^\s*excludesfile\s*=\s*(.*?)\s*$", re.IGNORECASE)


def _git_dir(folder: str) -> str | None:
    """The git directory of a work tree whose top is `folder` (`.git`, or where a
    `.git` file of a worktree or submodule points; a worktree's shared part)."""
    dot_git = os.path.join(folder, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    try:
        with open(dot_git, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith("gitdir:"):
        return None
    git_dir = os.path.join(folder, first[len("gitdir:") :].strip())
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as fh:
            return os.path.normpath(os.path.join(git_dir, fh.readline().strip()))
    except (OSError, UnicodeDecodeError):
        return git_dir


def _excludes_setting(config_file: str) -> str | None:
    """`core.excludesFile` in one git config file (the last one set), or None."""
    try:
        with open(config_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    section = ""
    value: str | None = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section = header.group(1).lower()
            continue
        found = _EXCLUDES_FILE.match(line) if section == "core" else None
        if found:
            value = found.group(1).strip('"')
    return value


class _GitIgnores:
    """Reads the ignore files a walk meets, each once, and answers "is this ignored?"."""

    def __init__(self) -> None:
        self.specs: dict[str, GitIgnoreSpec | None] = {}
        self.global_file: str | None = None
        self.global_read = False

    def _spec(self, path: str) -> GitIgnoreSpec | None:
        if path in self.specs:
            return self.specs[path]
        spec: GitIgnoreSpec | None = None
        try:
            with open(path, "rb") as fh:
                raw = fh.read(4 << 20)
        except OSError:
            raw = b""
        lines = raw.decode("utf-8", errors="replace").splitlines()
        if any(line.strip() and not line.startswith("#") for line in lines):
            spec = _compile(lines)
        self.specs[path] = spec
        return spec

    def _global(self) -> str | None:
        if not self.global_read:
            self.global_read = True
            home = os.path.expanduser("~")
            xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
            configured = None
            # git reads the XDG file first, then ~/.gitconfig: the later one wins
            for config_file in (f"{xdg}/git/config", f"{home}/.gitconfig"):
                configured = _excludes_setting(config_file) or configured
            default = os.path.join(xdg, "git", "ignore")
            self.global_file = os.path.expanduser(configured) if configured else default
        return self.global_file

    def repository(self, top: str) -> _Rules:
        """The rules of a work tree whose top is `top`, before any `.gitignore`."""
        prefix = top.rstrip("/") + "/"
        git_dir = _git_dir(top)
        files: list[str | None] = []
        own = _excludes_setting(os.path.join(git_dir, "config")) if git_dir else None
        files.append(os.path.expanduser(own) if own else self._global())
        if git_dir is not None:
            files.append(os.path.join(git_dir, "info", "exclude"))
        rules: list[tuple[str, GitIgnoreSpec]] = []
        for path in files:
            spec = self._spec(path) if path else None
            if spec is not None:
                rules.append((prefix, spec))
        return tuple(rules)

    def folder(self, folder: str, rules: _Rules) -> _Rules:
        """`rules` plus the `.gitignore` of `folder` (an absolute, normalised path)."""
        spec = self._spec(os.path.join(folder, ".gitignore"))
        if spec is None:
            return rules
        return (*rules, (folder.rstrip("/") + "/", spec))

    def above(self, folder: str) -> _Rules | None:
        """The rules in force in `folder` from the folders above it; None outside a
        git work tree. A folder that git ignores gets none: it was named, so it is
        scanned (the `.gitignore` files inside it still count)."""
        chain: list[str] = []
        here = folder
        while True:
            parent = os.path.dirname(here)
            if parent == here:
                return None  # no work tree around it
            chain.append(parent)
            if os.path.lexists(os.path.join(parent, ".git")):
                break
            here = parent
        chain.reverse()  # the top of the work tree first
        rules = self.repository(chain[0])
        for i, above in enumerate(chain):
            rules = self.folder(above, rules)
            child = chain[i + 1] if i + 1 < len(chain) else folder
            if _git_ignored(rules, child, is_dir=True):
                return ()
        return rules


def _compile(lines: Iterable[str]) -> GitIgnoreSpec | None:
    """The patterns of an ignore file; a line pathspec rejects is dropped, as git does."""
    # imported here: a tree without ignore files (an installed package) never needs it
    from pathspec import GitIgnoreSpec

    lines = list(lines)
    try:
        return GitIgnoreSpec.from_lines(lines)
    except ValueError:  # GitIgnorePatternError
        kept: list[str] = []
        for line in lines:
            try:
                GitIgnoreSpec.from_lines([line])
            except ValueError:
                continue
            kept.append(line)
        return GitIgnoreSpec.from_lines(kept) if kept else None


def _git_ignored(rules: _Rules, absolute: str, *, is_dir: bool) -> bool:
    """Whether git ignores `absolute` (normalised, `/`-separated) under `rules`."""
    for prefix, spec in reversed(rules):
        if not absolute.startswith(prefix):
            continue
        relative = absolute[len(prefix) :] + ("/" if is_dir else "")
        decided = spec.check_file(relative).include
        if decided is not None:
            return decided
    return False


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
        self.ignores = _GitIgnores() if config.respect_gitignore else None

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

    def _absolute(self, path: Path) -> str:
        return os.path.normpath(os.path.join(self.cwd_text, path)).replace(os.sep, "/")

    def walk(self, top: Path) -> None:
        rules = self.ignores.above(self._absolute(top)) if self.ignores is not None else None
        stack: list[tuple[Path, _Rules | None]] = [(top, rules)]
        while stack:
            folder, rules = stack.pop()
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
            where = ""
            if self.ignores is not None:
                where = self._absolute(folder)
                names = {e.name for e in entries}
                if ".git" in names:
                    rules = self.ignores.repository(where)  # a repository of its own
                if rules is not None and ".gitignore" in names:
                    rules = self.ignores.folder(where, rules)
            subdirs: list[Path] = []
            for entry in entries:
                if rules and self._ignored(entry, where, rules):
                    continue
                self._entry(entry, st.st_dev, subdirs)
            stack.extend((d, rules) for d in reversed(subdirs))

    def _ignored(self, entry: os.DirEntry[str], where: str, rules: _Rules) -> bool:
        name = entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:  # a symlink loop: the walk reports it
            return False
        # only what the walk would take is matched: not every image and log file
        if (name not in SKIPPED_DIRS) if is_dir else name.endswith(".py"):
            return _git_ignored(rules, f"{where}/{name}", is_dir=is_dir)
        return False

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


def may_matter(text: str, knowledge: Knowledge, tree: ast.Module | None = None) -> bool:
    """Whether a file may hold what a finding starts from, by its text alone.

    Every finding is made in async code: an `async def`, an `async with`, an `await`.
    Outside it, a file counts only through what async code looks up in it (a function
    it calls, a class, an object), or through three things the search reads in every
    file: a generator handed to a streaming response (HD301), a coroutine registered
    for startup or shutdown, and, asked for by name once they matter, the holders of a
    thread lock and the places a coroutine is handed on (`graph.Demand`). A file with
    none of these words is parsed (a syntax error is still reported) but analysed only
    when a lookup goes into it: in a large project most files never are, and their
    analysis was most of a cold scan.

    With the file's `tree`, only code counts: no `async def` means no async code,
    whatever the docstrings say, and a registration word counts unless every mention
    is inside a docstring or on a comment line ("the lifespan of the connection" made
    four of SQLAlchemy's biggest modules count).
    """
    words = [word for word in _words(knowledge) if word in text]
    has_async = ("async" in text or "await" in text) and word_at(_ASYNC_CODE, text)
    if tree is None:  # the text alone: any of the words counts
        return bool(words) or has_async
    # the words may be in a docstring ("await session.execute(...)", "the lifespan of a
    # connection"): the tree says whether there is async code (an `async def`: `await`,
    # `async with` and `async for` are only found in one), and where the prose is
    if has_async and _has_async_def(tree):
        return True
    return bool(words) and _in_code(text, words, _prose_lines(tree))


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every statement of the module, nested ones included (no expression is visited)."""
    todo: list[list[ast.stmt]] = [tree.body]
    while todo:
        for stmt in todo.pop():
            yield stmt
            for field in _BLOCKS:
                part = getattr(stmt, field, None)
                if part:
                    todo.append(part)
            for case in getattr(stmt, "cases", ()):
                todo.append(case.body)
            for handler in getattr(stmt, "handlers", ()):
                todo.append(handler.body)


def _has_async_def(tree: ast.Module) -> bool:
    """Whether an `async def` is anywhere in the module, from its statements alone."""
    return any(type(stmt) is ast.AsyncFunctionDef for stmt in _statements(tree))


def _prose_lines(tree: ast.Module) -> set[int]:
    """The lines strictly inside a string that is a statement of its own (a docstring):
    nothing on them is code (its first and last lines may hold code beside it)."""
    lines: set[int] = set()
    for stmt in _statements(tree):
        if (
            type(stmt) is ast.Expr
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
            and stmt.end_lineno is not None
            and stmt.end_lineno > stmt.lineno + 1
        ):
            lines.update(range(stmt.lineno + 1, stmt.end_lineno))
    return lines


def _in_code(text: str, words: Sequence[str], prose: set[int]) -> bool:
    """Whether one of `words` is in `text` other than on a line of `prose` or a line that
    holds only a comment (or, inside a string, only text that starts with `#`)."""
    for word in words:
        pos = text.find(word)
        while pos >= 0:
            start = text.rfind("\n", 0, pos) + 1
            line = text.count("\n", 0, start) + 1
            if line not in prose and not text[start:pos].lstrip().startswith("#"):
                return True
            pos = text.find(word, pos + len(word))
    return False


_BLOCKS = ("body", "orelse", "finalbody")


# `async def`, `async with`, `async for`, `await`: a mention in a comment or a docstring
# only costs the file's analysis; the words split by a line continuation still count
_ASYNC_CODE = re.compile(r"(?:async[\s\\]+(?:def|with|for)|await)(?!\w)")


def word_at(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `pattern` matches `text` where a word starts (`\\b` before it).

    The `\\b` is checked here, not in the pattern: a pattern that starts with its text
    is searched for as fast as `str.find`, one that starts with `\\b` forty times slower.
    """
    for m in pattern.finditer(text):
        before = text[m.start() - 1] if m.start() else " "
        if not (before.isalnum() or before == "_"):
            return True
    return False


_words_memo: dict[str, tuple[str, ...]] = {}


def _words(knowledge: Knowledge) -> tuple[str, ...]:
    words = _words_memo.get(knowledge.fingerprint)
    if words is None:
        names = {s.rpartition(".")[2] for s in knowledge.sinks} | REGISTRATION_WORDS
        words = _words_memo[knowledge.fingerprint] = tuple(sorted(names))
    return words


# what `str.splitlines` breaks lines at besides "\n", in ASCII text
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")


def line_count(text: str) -> int:
    """`len(text.splitlines())` without making the lines: a file that is only indexed
    needs their number alone, and making them cost a fifth of its index."""
    if not text.isascii() or any(c in text for c in _OTHER_BREAKS):
        return len(text.splitlines())
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def facts_from_bytes(
    raw: bytes,
    display: str,
    module: str,
    is_package: bool,
    knowledge: Knowledge,
    max_bytes: int = DEFAULT_MAX_FILE_SIZE,
    *,
    whole: bool = True,
) -> FileFacts | FileProblem:
    """Facts of one file's bytes, or the problem that stops them; never raises.

    `whole=False`: a file that does not `may_matter` is only parsed, and its facts are
    `deferred` (analysed later if a lookup goes into it).
    """
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
    try:
        if not whole and not may_matter(text, knowledge, tree):
            return file_index(tree, line_count(text), module, is_package, knowledge)
        facts = file_facts(tree, text.splitlines(), module, is_package, knowledge)
    except RecursionError:
        return FileProblem(display, "is nested too deeply to analyse.")
    table = suppressions(text)
    if table:
        facts = replace(facts, suppressions=tuple(sorted(table.items())))
    return facts
