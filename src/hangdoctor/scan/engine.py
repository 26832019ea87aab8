"""`scan_paths`: files -> per-file facts (cached, in parallel) -> graph -> filtered findings."""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hangdoctor.catalog import all_rules
from hangdoctor.model import Finding, finding_from_dict, to_dict
from hangdoctor.scan.cache import FactCache, cache_directory, code_fingerprint
from hangdoctor.scan.config import ScanConfig, load_config
from hangdoctor.scan.facts import FileFacts, FileProblem
from hangdoctor.scan.files import (
    SourceFile,
    content_key,
    decode_source,
    discover,
    facts_from_bytes,
    too_large,
    word_at,
)
from hangdoctor.scan.graph import Demand, RawFinding, find
from hangdoctor.scan.knowledge import Knowledge, build_knowledge
from hangdoctor.scan.result_cache import ResultCache, tree_key
from hangdoctor.scan.suppress import is_suppressed
from hangdoctor.scan.workers import Workers, current

__all__ = ["ChainStep", "ScanOptions", "ScanResult", "ScanStats", "scan_paths"]

_STATIC = frozenset(r.code for r in all_rules() if r.static)
_PARALLEL_MIN_FILES = 24  # below this, starting worker processes costs more than it saves


@dataclass(frozen=True)
class ScanOptions:
    """How to run a scan (what to look for comes from the config)."""

    use_cache: bool = True
    jobs: int | None = None  # worker processes; None: one per core; 1: in this process
    select: tuple[str, ...] | None = None  # overrides the config's select
    ignore: tuple[str, ...] = ()  # added to the config's ignore
    cache_dir: Path | None = None  # default: .hangdoctor_cache in the project root
    fail_on_startup: bool = False  # findings in startup/shutdown code count for the exit status
    # analyse a file only once async code can reach it (`files.may_matter`, `graph.Demand`):
    # the same findings, at a fraction of the cost; False analyses every file up front
    defer: bool = True


@dataclass(frozen=True)
class ChainStep:
    """One hop of a finding's call chain, with where it is."""

    function: str
    file: str
    line: int
    col: int  # 0-based
    call: str  # the callee as written, or what blocks at the last step


@dataclass(frozen=True)
class ScanStats:
    """How the scan went; `files == parsed + cached`, and the files that could not be
    scanned are the result's `errors`, so the counts a report prints add up."""

    files: int = 0  # files scanned: their facts were read (parsed now or from the cache)
    parsed: int = 0  # of those, parsed in this run
    cached: int = 0  # of those, taken from the cache
    lines: int = 0
    seconds: float = 0.0
    jobs: int = 1  # worker processes used for parsing
    cache_file: str | None = None


@dataclass(frozen=True)
class ScanResult:
    """Findings (sorted by file, line, column), problems, and how the scan went."""

    findings: tuple[Finding, ...]
    problems: tuple[FileProblem, ...]
    stats: ScanStats
    config: ScanConfig
    steps: dict[tuple[str, int, int, str], tuple[ChainStep, ...]] = field(default_factory=dict)
    files: dict[str, SourceFile] = field(default_factory=dict)  # display path -> the file
    # findings in code that runs once, at startup or shutdown (`Finding.phase`): shown apart,
    # they fail the check only with `fail_on_startup`
    lifecycle: tuple[Finding, ...] = ()
    fail_on_startup: bool = False
    # (file, line, col, code) -> "safe" / "unsafe": what `--fix` (`--unsafe-fixes`) will
    # change, from the fixer's own dry run (hangdoctor.fix.marks); empty until marked
    fixes: dict[tuple[str, int, int, str], str] = field(default_factory=dict)
    _lines: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def errors(self) -> tuple[FileProblem, ...]:
        """Problems that stopped a file (or a path) from being scanned."""
        return tuple(p for p in self.problems if p.kind == "error")

    @property
    def exit_code(self) -> int:
        """1 when something was found; else 2 when a file could not be scanned; else 0."""
        if self.findings or (self.fail_on_startup and self.lifecycle):
            return 1
        return 2 if self.errors else 0

    def chain_of(self, finding: Finding) -> tuple[ChainStep, ...]:
        """Where each hop of a chained finding is (empty for a direct finding)."""
        return self.steps.get((finding.file, finding.line, finding.col or 0, finding.code), ())

    def fix_of(self, finding: Finding) -> str | None:
        """ "safe" when `--fix` changes this finding's code, "unsafe" when only
        `--fix --unsafe-fixes` does, None when neither does (or nothing was marked)."""
        return self.fixes.get((finding.file, finding.line, finding.col or 0, finding.code))

    def relative(self, display: str) -> str:
        """The file's path relative to the project root (`/`-separated)."""
        src = self.files.get(display)
        return src.relative if src is not None else display

    def source_lines(self, display: str) -> list[str]:
        """The decoded lines of a scanned file (empty when it cannot be read now)."""
        if display not in self._lines:
            src = self.files.get(display)
            self._lines[display] = _source_lines(src.path) if src is not None else []
        return self._lines[display]


# ---- parsing, in this process or in workers ----------------------------------------

_worker_knowledge: dict[tuple[tuple[str, str], ...], Knowledge] = {}
# (path, display, module, is_package, blocking calls, blocking methods, size limit, whole)
_Job = tuple[
    str, str, str, bool, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], int, bool
]
# (blocking calls, blocking methods, size limit, whole, [(path, display, module, is_package)])
_Batch = tuple[
    tuple[tuple[str, str], ...],
    tuple[tuple[str, str], ...],
    int,
    bool,
    list[tuple[str, str, str, bool]],
]
_BATCHES_PER_WORKER = 16


def _knowledge_for(
    extras: tuple[tuple[str, str], ...], methods: tuple[tuple[str, str], ...]
) -> Knowledge:
    key = (*extras, ("--methods--", ""), *methods)
    kb = _worker_knowledge.get(key)
    if kb is None:
        kb = build_knowledge(dict(extras), dict(methods))
        _worker_knowledge[key] = kb
    return kb


def _parse_job(job: _Job) -> FileFacts | FileProblem:
    """Read and analyse one file (runs in a worker process); never raises."""
    path, display, module, is_package, extras, methods, limit, whole = job
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)  # a file that grew since it was measured stays bounded
            if len(raw) > limit:
                return too_large(display, os.fstat(fh.fileno()).st_size, limit) or FileProblem(
                    display, "grew while it was read; scan again."
                )
    except OSError as exc:
        return FileProblem(display, f"cannot be read ({exc.strerror}).")
    try:
        kb = _knowledge_for(extras, methods)
        return facts_from_bytes(raw, display, module, is_package, kb, limit, whole=whole)
    except Exception as exc:  # a scanner bug must not lose the rest of the scan
        return FileProblem(display, f"could not be analysed ({type(exc).__name__}: {exc}).")


def _parse_batch(batch: _Batch) -> list[FileFacts | FileProblem]:
    """Read and analyse a batch of files (in a worker process, or in this one when it
    takes a share: `Workers.map`); never raises."""
    extras, methods, limit, whole, files = batch
    out: list[FileFacts | FileProblem] = []
    was = gc.isenabled()  # in this process, the scan has it off already
    for f in files:
        # A file's tree is a few hundred thousand objects, all alive until its facts are
        # done and then freed by reference counting: the cyclic collector's passes over
        # them find nothing and cost a tenth of the scan. Off one file at a time, so
        # whatever cycles a file leaves are collected after it.
        gc.disable()
        try:
            out.append(_parse_job((*f, extras, methods, limit, whole)))
        finally:
            if was:
                gc.enable()
    return out


def _batches(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """Indices of the jobs in batches of about equal bytes, the biggest files first.

    Parsing time follows a file's size, and a few modules are a tenth of a tree: handed
    out in file order, one worker ends with a big file while the others wait. Biggest
    first, in batches small enough for the last ones to even out the workers' ends, and
    big enough that handing them out costs little.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    target = max(1, sum(sizes) // (workers * _BATCHES_PER_WORKER))
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in order:
        current.append(i)
        size += sizes[i]
        if size >= target:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


def _run_jobs(
    jobs: list[_Job],
    workers: int,
    sizes: Sequence[int],
    share: bool = False,
) -> tuple[list[FileFacts | FileProblem], int]:
    """Each job's facts, in order, and how many processes did the work: the workers of
    the enclosing `shared_workers`, else ones started for this call; this process for
    fewer than `_PARALLEL_MIN_FILES` files. With `share`, the workers of the enclosing
    `shared_workers`, already started, take any number of files, and this process
    takes its share (`Workers.map`): they may still be busy warming up."""
    shared = current()
    helped = share and shared is not None and shared.started and len(jobs) > 1
    if workers <= 1 or (len(jobs) < _PARALLEL_MIN_FILES and not helped):
        return [_parse_job(j) for j in jobs], 1
    pool = shared if shared is not None and shared.count > 1 else None
    if pool is not None:
        workers = pool.count
    workers = min(workers, len(jobs))
    batches = _batches(sizes, workers)
    payloads: list[_Batch] = []
    for indices in batches:
        extras, methods, limit, whole = jobs[indices[0]][4:]
        payloads.append((extras, methods, limit, whole, [jobs[i][:4] for i in indices]))
    if pool is not None:
        mapped = pool.map(_parse_batch, payloads, share=share)
    else:
        own = Workers(workers)
        try:
            mapped = own.map(_parse_batch, payloads)
        finally:
            own.close()
    if mapped is None:
        return [_parse_job(j) for j in jobs], 1  # no processes to be had: do it here
    out: list[FileFacts | FileProblem | None] = [None] * len(jobs)
    for indices, results in zip(batches, mapped, strict=True):
        for i, result in zip(indices, results, strict=True):
            out[i] = result
    return [r for r in out if r is not None], workers


# ---- the scan ------------------------------------------------------------------------


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a while (as it was before, after).

    A scan builds millions of small objects that all stay alive until it returns (the
    facts of every file, from the workers or the cache, and the graph over them): each
    of the collector's passes walks them all and frees nothing. With it on, taking in
    the workers' facts cost several times their unpickling itself. Reference counting
    still frees everything else at once.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def scan_paths(
    paths: Sequence[Path],
    options: ScanOptions | None = None,
    config: ScanConfig | None = None,
    *,
    cwd: Path | None = None,
) -> ScanResult:
    """Scan files and folders; problems with single files are reported, never raised.

    Raises ScanConfigError (a HangdoctorError) for invalid settings only.
    """
    with _no_cyclic_gc():
        return _scan(paths, options, config, cwd)


def _scan(
    paths: Sequence[Path],
    options: ScanOptions | None,
    config: ScanConfig | None,
    cwd: Path | None,
) -> ScanResult:
    started = time.perf_counter()
    options = options or ScanOptions()
    cwd = (cwd or Path.cwd()).absolute()
    config = config or load_config(list(paths))
    files, problems = discover(paths, config, cwd)
    kb = build_knowledge(dict(config.blocking_calls), dict(config.blocking_methods))
    cache: FactCache | None = None
    reuse: ResultCache | None = None
    tree: str | None = None
    if options.use_cache:
        directory = _given_cache(options.cache_dir) or cache_directory(config.root)
        salt = f"{code_fingerprint()}-{kb.fingerprint}"
        reuse = ResultCache(directory, salt)
        settings = repr((config, options.select, options.ignore))
        tree = tree_key(
            salt, settings, [(str(f.path), f.display, f.module, f.is_package) for f in files]
        )
        known = reuse.get(tree) if tree is not None else None
        if known is not None:
            reused = _reuse(known, files, problems, config, started, directory, options)
            if reused is not None:
                return reused
        cache = FactCache(directory, salt)
    facts: list[FileFacts | FileProblem | None] = [None] * len(files)
    keys: list[str | None] = [None] * len(files)
    sizes: list[int] = [0] * len(files)
    todo: list[int] = []
    limit = config.max_file_size
    for i, src in enumerate(files):
        hit = _from_cache(cache, src, keys, sizes, i, limit)
        if hit is not None:
            facts[i] = hit
        else:
            todo.append(i)
    extras, methods = config.blocking_calls, config.blocking_methods
    workers = options.jobs if options.jobs is not None else (os.cpu_count() or 1)

    def run(indices: Sequence[int], whole: bool, share: bool = False) -> int:
        """Parse (and analyse) these files, in workers when there are enough of them."""
        jobs: list[_Job] = [
            (
                str(files[i].path),
                files[i].display,
                files[i].module,
                files[i].is_package,
                extras,
                methods,
                limit,
                whole,
            )
            for i in indices
        ]
        results, used = _run_jobs(jobs, workers, [sizes[i] for i in indices], share)
        for i, result in zip(indices, results, strict=True):
            facts[i] = result
            key = keys[i]
            if cache is not None and key is not None:
                cache.put(key, result)
        return used

    used = run(todo, not options.defer)
    if not options.defer:  # deferred facts from an earlier scan's cache: analysed now
        run([i for i, f in enumerate(facts) if _deferred(f)], True)
    findings, steps = _findings(
        files, facts, kb, config, options, lambda ix: run(ix, True, share=True)
    )
    if cache is not None:
        cache.save()
    lines = 0
    file_problems: list[FileProblem] = []
    for i, f in enumerate(facts):
        if isinstance(f, FileFacts):
            lines += f.lines
        elif f is not None:
            # cached problems carry the display path of the run that found them
            file_problems.append(FileProblem(files[i].display, f.message, f.line, f.col, f.kind))
    problems.extend(file_problems)
    if reuse is not None and tree is not None:
        reuse.put(tree, _to_reuse(findings, steps, file_problems, lines))
    scanned = [isinstance(f, FileFacts) for f in facts]
    parsed = sum(1 for i in todo if scanned[i])
    stats = ScanStats(
        files=sum(scanned),
        parsed=parsed,
        cached=sum(scanned) - parsed,
        lines=lines,
        seconds=time.perf_counter() - started,
        jobs=used,
        cache_file=str(cache.path) if cache is not None and cache.path else None,
    )
    return _result(findings, problems, stats, config, steps, files, options)


def _given_cache(folder: Path | None) -> Path | None:
    """`ScanOptions.cache_dir`, created if need be (the cache files are written into it,
    never the folder itself); None when it cannot be, and the default place is used."""
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def _result(
    findings: tuple[Finding, ...],
    problems: Sequence[FileProblem],
    stats: ScanStats,
    config: ScanConfig,
    steps: dict[tuple[str, int, int, str], tuple[ChainStep, ...]],
    files: Sequence[SourceFile],
    options: ScanOptions,
) -> ScanResult:
    return ScanResult(
        findings=tuple(f for f in findings if not f.phase),
        lifecycle=tuple(f for f in findings if f.phase),
        fail_on_startup=options.fail_on_startup,
        problems=tuple(sorted(problems, key=lambda p: (p.path, p.line or 0))),
        stats=stats,
        config=config,
        steps=steps,
        files={src.display: src for src in files},
    )


def _to_reuse(
    findings: Sequence[Finding],
    steps: dict[tuple[str, int, int, str], tuple[ChainStep, ...]],
    file_problems: Sequence[FileProblem],
    lines: int,
) -> dict[str, Any]:
    return {
        "findings": [to_dict(f) for f in findings],
        "steps": [[list(k), [asdict(s) for s in v]] for k, v in steps.items()],
        "problems": [asdict(p) for p in file_problems],
        "lines": lines,
    }


def _reuse(
    known: dict[str, Any],
    files: Sequence[SourceFile],
    problems: list[FileProblem],
    config: ScanConfig,
    started: float,
    directory: Path | None,
    options: ScanOptions,
) -> ScanResult | None:
    """The result of an identical earlier scan; None when the entry cannot be read."""
    try:
        findings = tuple(finding_from_dict(f) for f in known["findings"])
        steps = {
            (str(k[0]), int(k[1]), int(k[2]), str(k[3])): tuple(ChainStep(**s) for s in v)
            for k, v in known["steps"]
        }
        file_problems = [FileProblem(**p) for p in known["problems"]]
        lines = int(known["lines"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    problems = problems + file_problems
    scanned = len(files) - len({p.path for p in file_problems})
    stats = ScanStats(
        files=scanned,
        parsed=0,
        cached=scanned,
        lines=lines,
        seconds=time.perf_counter() - started,
        jobs=1,
        cache_file=str(directory) if directory is not None else None,
    )
    return _result(findings, problems, stats, config, steps, files, options)


def _from_cache(
    cache: FactCache | None,
    src: SourceFile,
    keys: list[str | None],
    sizes: list[int],
    i: int,
    limit: int,
) -> FileFacts | FileProblem | None:
    """The cached facts of a file, recording its size and content key either way.

    A file over the size limit is the problem that says so, without a key: it
    is neither read nor cached. Without a cache the file is not read here at all:
    a worker reads it once, to parse it.
    """
    try:
        st = src.path.stat()
    except OSError:
        return None
    sizes[i] = st.st_size
    big = too_large(src.display, st.st_size, limit)
    if big is not None:
        return big
    if cache is None:
        return None
    known = cache.key_from_stat(str(src.path.absolute()), st)
    if known is not None:
        keys[i] = known
        return cache.get(known)
    try:
        with open(src.path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None  # the worker reports it
    key = content_key(raw, src.module, src.is_package)
    keys[i] = key
    cache.remember_stat(str(src.path.absolute()), st, key)
    return cache.get(key)


def _deferred(f: FileFacts | FileProblem | None) -> bool:
    return isinstance(f, FileFacts) and f.deferred


def _mentioning(
    files: Sequence[SourceFile], indices: Sequence[int], names: set[str], limit: int
) -> set[int]:
    """The files among `indices` whose text names one of `names` (as a whole word)."""
    patterns = [(name, re.compile(re.escape(name) + r"(?!\w)")) for name in sorted(names)]
    # Python source is in an ASCII-compatible encoding: an ASCII name in the text is in the
    # bytes too, so most files are passed over without being decoded
    needles = [name.encode() for name in names] if all(n.isascii() for n in names) else None
    out: set[int] = set()
    for i in indices:
        try:
            with open(files[i].path, "rb") as fh:
                raw = fh.read(limit + 1)
            if needles is not None and not any(n in raw for n in needles):
                continue
            text = decode_source(raw)
        except (OSError, ValueError):
            out.add(i)  # changed since it was parsed: its analysis says what it is now
            continue
        if any(name in text and word_at(pattern, text) for name, pattern in patterns):
            out.add(i)
    return out


def _findings(
    files: list[SourceFile],
    facts: list[FileFacts | FileProblem | None],
    kb: Knowledge,
    config: ScanConfig,
    options: ScanOptions,
    analyse: Callable[[list[int]], object],
) -> tuple[tuple[Finding, ...], dict[tuple[str, int, int, str], tuple[ChainStep, ...]]]:
    """The findings, once every deferred file the search needs has been analysed
    (`analyse` fills `facts` in); then the same as those of a whole analysis."""
    select = options.select if options.select is not None else config.select
    ignore = (*config.ignore, *options.ignore)

    def enabled(code: str) -> bool:
        if code not in _STATIC:
            return False
        if select and not any(p == "ALL" or code.startswith(p) for p in select):
            return False
        return not any(p == "ALL" or code.startswith(p) for p in ignore)

    tables: list[dict[int, tuple[str, ...]]] = []

    def suppressed(index: int, line: int, code: str) -> bool:
        return is_suppressed(tables[index], line, code)

    searched: set[str] = set()  # names whose mentions were looked for
    while True:
        parsed = [f if isinstance(f, FileFacts) else None for f in facts]
        tables[:] = [dict(f.suppressions) if f is not None else {} for f in parsed]
        demand = Demand()
        raw = find(
            parsed,
            kb,
            enabled=enabled,
            suppressed=suppressed,
            display=lambda i: files[i].display,
            demand=demand,
        )
        wanted = {i for i in demand.files if _deferred(facts[i])}
        names = demand.names - searched
        if names:
            searched |= names
            waiting = [i for i, f in enumerate(facts) if _deferred(f) and i not in wanted]
            wanted |= _mentioning(files, waiting, names, config.max_file_size)
        if not wanted:
            break
        analyse(sorted(wanted))
    kept: dict[tuple[int, int, int], RawFinding] = {}
    for r in raw:
        src = files[r.file_index]
        if suppressed(r.file_index, r.line, r.code) or config.ignored_in(src.relative, r.code):
            continue
        site = (r.file_index, r.line, r.col)
        best = kept.get(site)
        # one finding per place: a direct call beats a chain, a short chain a long one
        if best is None or (len(r.chain), r.code) < (len(best.chain), best.code):
            kept[site] = r
    lines: dict[int, list[str]] = {}
    out: list[Finding] = []
    steps: dict[tuple[str, int, int, str], tuple[ChainStep, ...]] = {}
    for (index, _, _), r in sorted(
        kept.items(), key=lambda kv: (files[kv[0][0]].display, kv[0][1], kv[0][2])
    ):
        src = files[index]
        if index not in lines:
            lines[index] = _source_lines(src.path)
        text = lines[index]
        source = text[r.line - 1].strip() if 0 < r.line <= len(text) else None
        finding = Finding(
            code=r.code,
            message=r.message,
            file=src.display,
            line=r.line,
            function=r.function,
            source=source,
            col=r.col,
            chain=r.chain,
            phase=r.phase or None,
        )
        out.append(finding)
        if r.steps:
            steps[(src.display, r.line, r.col, r.code)] = tuple(
                ChainStep(s.function, files[s.file_index].display, s.line, s.col, s.text)
                for s in r.steps
            )
    return tuple(out), steps


def _source_lines(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            return decode_source(fh.read()).splitlines()
    except (OSError, ValueError):
        return []
