"""Which scan findings `--fix` will change, asked of the fixer itself before anything is shown.

The `[*]` / `[unsafe fix]` marks (JSON's `fix`, SARIF's `fix` property) once
came from the finding's code alone (HD201 safe, HD202 unsafe) while the fixer
could refuse that very place ("There is no call at line 10"). Now the scan
command runs the fixer on each file with fixable findings without writing,
with the sites and target `--fix` and `--fix --unsafe-fixes` use
(`fix_sites` is what `_apply_fixes` hands the fixer too), and marks a finding
only when that dry run changes its code:

- "safe": `--fix` changes it;
- "unsafe": only `--fix --unsafe-fixes` does;
- no mark: neither does (the fixer's reason is printed by `--fix`).

Renderers read the marks from `ScanResult.fix_of`; they never run the fixer.

The dry run costs a libcst parse of each such file, so its answer is kept beside
the scan's cache (`marks.json`), keyed by the file's bytes, the sites, the target
Python and the fixer's own code: a repeated scan (pre-commit, an editor) reuses it.
The files the cache does not know are dry-run in forked worker processes when
there are several (and cores for them), and libcst is imported only then.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hangdoctor.fix.codes import FIXABLE
from hangdoctor.fix.model import FixSite
from hangdoctor.outfile import is_read_only
from hangdoctor.scan.workers import Workers, current, pool_context

if TYPE_CHECKING:
    from hangdoctor.scan import ScanResult

__all__ = ["SAFE", "UNSAFE", "fix_marks", "fix_sites", "warm_up", "with_fix_marks"]

SAFE = "safe"
UNSAFE = "unsafe"

_Key = tuple[str, int, int, str]  # (file, line, col, code), as ScanResult.fixes is keyed
FileFilter = Callable[[str], bool]  # which files (display paths) `--fix` may rewrite


def fix_sites(
    result: ScanResult, *, unsafe: bool, files: FileFilter | None = None
) -> dict[str, list[FixSite]]:
    """The sites `--fix` (`--fix --unsafe-fixes` when `unsafe`) hands the fixer, by file.

    Every finding whose code has a fix (a safe one unless `unsafe`), in the
    files `files` accepts; findings in startup and shutdown code
    (`ScanResult.lifecycle`) are reported apart and not fixed.
    """
    by_file: dict[str, list[FixSite]] = {}
    for f in result.findings:
        safe = FIXABLE.get(f.code)
        if safe is None or (not safe and not unsafe):
            continue
        if files is not None and not files(f.file):
            continue
        by_file.setdefault(f.file, []).append(FixSite(f.code, f.line, f.col or 0))
    return by_file


_MAX_MARKS = 20_000  # cached dry runs kept: a file and its sites each


def _fixer_fingerprint() -> str:
    """A hash of the fixer's own source: a changed fixer answers again."""
    from hangdoctor.scan.cache import sources_fingerprint

    return sources_fingerprint((Path(__file__).resolve().parent,))


class _MarkCache:
    """The dry runs' answers of earlier scans, in the scan cache's folder (or nowhere)."""

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else folder / "marks.json"
        self.entries: dict[str, Any] = {}
        self.dirty = False
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("fixer") == _fixer_fingerprint():
                entries = data.get("entries")
                self.entries = entries if isinstance(entries, dict) else {}

    @staticmethod
    def key(data: bytes, runs: list[list[FixSite]], target: tuple[int, int]) -> str:
        digest = hashlib.blake2b(data, digest_size=16)
        sites = [[(s.code, s.line, s.col) for s in run] for run in runs]
        digest.update(json.dumps([sites, target]).encode())
        return digest.hexdigest()

    def get(self, key: str) -> tuple[list[FixSite], list[FixSite]] | None:
        found = self.entries.get(key)
        if not (isinstance(found, list) and len(found) == 2):
            return None
        try:
            safe, unsafe = ([FixSite(str(c), int(ln), int(col)) for c, ln, col in r] for r in found)
        except (TypeError, ValueError):
            return None
        return safe, unsafe

    def put(self, key: str, safe: list[FixSite], unsafe: list[FixSite]) -> None:
        self.entries[key] = [[[s.code, s.line, s.col] for s in r] for r in (safe, unsafe)]
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from hangdoctor.scan.cache import write_quietly

        kept = dict(list(self.entries.items())[-_MAX_MARKS:])
        write_quietly(self.path, json.dumps({"fixer": _fixer_fingerprint(), "entries": kept}))


def _cache_folder(result: ScanResult) -> Path | None:
    """The scan cache's folder (its `stats.cache_file` names the facts file or the folder)."""
    where = result.stats.cache_file
    if not where:
        return None  # `--no-cache`: nothing read or written
    path = Path(where)
    return path if path.is_dir() else path.parent


_Answer = tuple[list[FixSite], list[FixSite]]  # the sites a safe run and an unsafe run change
# (file, sites of the safe run, sites of the run with unsafe fixes, target Python)
_DryRun = tuple[Path, list[FixSite], list[FixSite], tuple[int, int]]


def _known(
    result: ScanResult,
    display: str,
    safe: list[FixSite],
    every: list[FixSite],
    target: tuple[int, int],
    cache: _MarkCache,
) -> tuple[_Answer | None, str | None]:
    """The answer for a file without running the fixer (a read-only file, or one the cache
    knows), or None and the cache key the fixer's answer is to be kept under."""
    src = result.files.get(display)
    if src is None or is_read_only(src.path):
        return ([], []), None  # `--fix` refuses a read-only file, whatever the code says
    try:
        data = src.path.read_bytes()
    except OSError:
        return None, None
    key = _MarkCache.key(data, [safe, every], target)
    return cache.get(key), key


def _dry_run(job: _DryRun) -> _Answer:
    """The sites a safe fix of the file would change, and those a fix with unsafe fixes
    would: one read, parse and analysis for both; nothing is written. Runs in a worker
    process when several files are marked."""
    # imported here: libcst takes a tenth of a second to import, and a scan whose marks
    # all come from the cache (or that has nothing to fix) never needs it
    from hangdoctor.fix.files import fix_file_runs

    path, safe, every, target = job
    done = fix_file_runs(path, [(safe, False), (every, True)], target_python=target)
    safe_run, unsafe_run = ([a.site for a in r.outcome.applied if a.site] for r in done)
    return safe_run, unsafe_run


_WARM_UP = "import time\n\n\nasync def f():\n    time.sleep(1)\n"


def warm_up() -> None:
    """Import the fixer and fix a few lines once, in a worker that would otherwise wait
    for the scan's search (`scan.workers.shared_workers`): libcst takes a fifth of a
    second to import, and its first parse and scope analysis set up what later ones
    reuse; both are paid there, not by the dry runs behind the marks."""
    from hangdoctor.fix.api import fix_source_runs

    site = FixSite("HD201", 5, 4)
    fix_source_runs(_WARM_UP, [([site], False), ([site], True)])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _dry_runs(jobs: list[_DryRun]) -> list[_Answer]:
    """`_dry_run` of each job, in order: in worker processes when there are several
    files and cores. Each file costs a libcst parse and analysis (a fifth of a second for
    a small module) in the parent after the scan's own work: on its own, this was a
    fifth of a cold scan of a large tree."""
    shared = current()
    if shared is not None and shared.started:
        # started by the scan, libcst imported while the search ran (`shared_workers`)
        done = _biggest_first(shared, jobs)
    else:
        done = _in_own_workers(jobs)
    return done if done is not None else [_dry_run(job) for job in jobs]


def _in_own_workers(jobs: list[_DryRun]) -> list[_Answer] | None:
    """The dry runs in forked workers started for them; None when they are not worth it
    (one file or one core) or cannot be had: this process does them."""
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return None
    # libcst imported once, here, for the forked workers to share, not once in each
    import hangdoctor.fix.files  # noqa: F401

    # only a fork starts at once with libcst already imported; a fresh interpreter
    # would spend more on its imports than the files cost
    if pool_context().get_start_method() != "fork":
        return None
    # A forked worker's collector would walk (and so copy) every object it got from this
    # process; frozen, they are left alone there. Here they are let go after.
    gc.freeze()
    own = Workers(workers)
    try:
        return _biggest_first(own, jobs)
    finally:
        own.close()
        gc.unfreeze()


def _biggest_first(workers: Workers, jobs: list[_DryRun]) -> list[_Answer] | None:
    """`Workers.map` of the dry runs, the biggest files handed out first so that no
    worker is left with one at the end; the answers in the jobs' order."""
    order = sorted(range(len(jobs)), key=lambda i: -_size(jobs[i][0]))
    done = workers.map(_dry_run, [jobs[i] for i in order])
    if done is None:
        return None
    out: list[_Answer] = [([], [])] * len(jobs)
    for answer, i in zip(done, order, strict=True):
        out[i] = answer
    return out


def fix_marks(
    result: ScanResult, *, target: tuple[int, int], files: FileFilter | None = None
) -> dict[_Key, str]:
    """(file, line, col, code) -> SAFE or UNSAFE for every finding a fix would change."""
    marks: dict[_Key, str] = {}
    safe_sites = fix_sites(result, unsafe=False, files=files)
    every_sites = fix_sites(result, unsafe=True, files=files)
    cache = _MarkCache(_cache_folder(result) if every_sites else None)
    answers: dict[str, _Answer] = {}
    todo: list[tuple[str, str | None]] = []
    jobs: list[_DryRun] = []
    for display, every in every_sites.items():
        safe = safe_sites.get(display, [])
        known, key = _known(result, display, safe, every, target, cache)
        if known is not None:
            answers[display] = known
        else:
            todo.append((display, key))
            jobs.append((result.files[display].path, safe, every, target))
    for (display, key), (safe_run, unsafe_run) in zip(todo, _dry_runs(jobs), strict=True):
        answers[display] = (safe_run, unsafe_run)
        if key is not None:
            cache.put(key, safe_run, unsafe_run)
    for display in every_sites:
        safe_run, unsafe_run = answers[display]
        for site in safe_run:
            marks[(display, site.line, site.col, site.code)] = SAFE
        for site in unsafe_run:
            marks.setdefault((display, site.line, site.col, site.code), UNSAFE)
    cache.save()
    return marks


def with_fix_marks(
    result: ScanResult, *, target: tuple[int, int], files: FileFilter | None = None
) -> ScanResult:
    """`result` carrying the marks of `fix_marks` (read with `ScanResult.fix_of`)."""
    return dataclasses.replace(result, fixes=fix_marks(result, target=target, files=files))
