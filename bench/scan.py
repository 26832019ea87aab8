"""Benchmark: `hangdoctor scan` against ruff's and flake8-async's ASYNC rules on real code.

Run: .venv/bin/python bench/scan.py [--rounds 3] [--flake8-rounds 1 (0: skip)] [--jobs N]
     [--packages ...] [--keep]

In one run, on one tree of real Python installed from PyPI (default: the sources
of Django and SQLAlchemy, over 400k lines), it times:
  floor       read + ast.parse of every file, nothing else, in the same number of
              worker processes started the same way (bench/_parse_floor.py)
  cold        hangdoctor scan --no-cache           (nothing reused)
  cold-cache  hangdoctor scan with a fresh, empty cache (first run fills it)
  warm        hangdoctor scan again with that cache (nothing changed)
  ruff        ruff check --select ASYNC --no-cache
  flake8      flake8 --select ASYNC (flake8-async plugin), in a throwaway venv
and prints wall time (median of the rounds), lines per second, the number of
findings each reports, and the ratios behind the issue's targets: the cold scan
at most 2x the parse floor and at least 3x faster than flake8-async, the warm
scan no slower than ruff. Memory: the peak resident memory of the cold scan,
all its processes together (sampled from /proc in an extra, untimed run; RSS,
which counts a page forked processes share once in each, and PSS, which does
not), and of a scan of a 50 MB generated module, which must be skipped, not parsed.

Everything lives in a temporary directory that is removed at the end (unless
--keep); every command has a deadline and the whole run has a budget.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("django==5.2.19", "sqlalchemy==2.1.9")
FLAKE8 = ("flake8", "flake8-async")
MIN_LINES = 300_000
FLOOR = Path(__file__).resolve().with_name("_parse_floor.py")
HUGE_SIZE = 50 << 20
CACHE_DIR = ".hangdoctor_cache"
_FINDING = re.compile(r"^.+?:\d+:\d+: ([A-Z]+[0-9]+)")


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class Timing:
    tool: str
    command: str
    seconds: list[float]
    findings: int
    codes: dict[str, int]
    peak_rss: int | None = None  # bytes, all the command's processes together; None: not measured
    peak_pss: int | None = None  # the same in proportional set size (see `_group_memory`)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


class Budget:
    """The whole run's time limit: each command gets what is left, at most `step`."""

    def __init__(self, total: float, step: float) -> None:
        self.end = time.monotonic() + total
        self.step = step

    def timeout(self) -> float:
        left = self.end - time.monotonic()
        if left <= 5:
            raise BenchError("the benchmark ran out of its time budget (raise --budget)")
        return min(left, self.step)


def _run(argv: list[str], budget: Budget, *, env: dict[str, str] | None = None) -> str:
    """Run `argv` in its own process group; on timeout the whole group is killed."""
    timeout = budget.timeout()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # flake8 and the scan fork workers: kill them all on timeout
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BenchError(f"`{' '.join(argv[:4])} ...` took over {timeout:.0f} s") from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode not in (0, 1):  # 1 = findings, for every tool here
        tail = (err or out).strip().splitlines()[-5:]
        raise BenchError(
            f"`{' '.join(argv[:4])} ...` exited {proc.returncode}: " + " | ".join(tail)
        )
    return out


def _pss(pid: str) -> int:
    """The proportional set size of a process, in bytes (0 when the kernel has no
    `smaps_rollup`, before Linux 4.14, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _group_memory(group: int, page: int) -> tuple[int, int]:
    """(resident, proportional) memory of every process in the process group `group`,
    in bytes. A page that n processes share (a forked worker's copy of its parent) is in
    each one's RSS, so the RSS sum counts it n times; PSS gives each 1/n of it, so the PSS
    sum is what the group holds."""
    total = pss = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone since the listing
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == group:  # after the name: state, ppid, pgrp, ... rss is the 22nd
            total += int(fields[21]) * page
            pss += _pss(entry)
    return total, pss


def _peak_rss(argv: list[str], budget: Budget) -> tuple[int | None, int | None, str]:
    """Peak resident memory (RSS, then PSS) of `argv` and of every process it starts,
    summed, in bytes (None where there is no /proc), and what it printed.

    Sampled from /proc every 20 ms: a run of its own, never a timed one, so the
    sampling costs the timings nothing. The RSS sum counts the pages forked workers
    share with their parent once per process, so it errs on the high side; the PSS sum
    (None without `smaps_rollup`) does not.
    """
    sample = os.path.isdir("/proc/self")
    page = os.sysconf("SC_PAGE_SIZE") if sample else 0
    deadline = time.monotonic() + budget.timeout()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the workers are found by it
        )
        peak = peak_pss = 0
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise BenchError(f"`{' '.join(argv[:4])} ...` took too long (memory run)")
                if sample:
                    rss, pss = _group_memory(proc.pid, page)
                    peak, peak_pss = max(peak, rss), max(peak_pss, pss)
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if proc.returncode not in (0, 1, 2):  # 2: a file not scanned, expected for the huge one
        raise BenchError(f"`{' '.join(argv[:4])} ...` exited {proc.returncode}: {text[-300:]}")
    return (peak if sample else None), (peak_pss if sample and peak_pss else None), text


def _huge_module(work: Path, size: int) -> Path:
    """A generated module of `size` bytes: one giant dict literal, as code generators write."""
    folder = work / "huge"
    folder.mkdir()
    path = folder / "generated.py"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("TABLE = {\n")
        written, n = 10, 0
        while written < size:
            line = f"    'key_{n:09d}': ({n}, 'value {n}', {n * 0.5}),\n"
            fh.write(line)
            written += len(line)
            n += 1
        fh.write("}\n")
    return path


def _install_corpus(work: Path, packages: list[str], budget: Budget) -> Path:
    corpus = work / "corpus"
    print(f"installing {', '.join(packages)} into {corpus} ...", flush=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(corpus),
            *packages,
        ],
        budget,
    )
    # only the packages' own sources: metadata and console scripts are not code
    for extra in corpus.iterdir():
        if extra.name.endswith(".dist-info") or extra.name == "bin":
            shutil.rmtree(extra)
    return corpus


def _install_flake8(work: Path, budget: Budget) -> Path:
    env_dir = work / "flake8-venv"
    print(f"installing {' and '.join(FLAKE8)} into a throwaway venv ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", *FLAKE8], budget)
    return env_dir / "bin" / "flake8"


def _count_lines(corpus: Path) -> tuple[int, int]:
    files = lines = 0
    for path in corpus.rglob("*.py"):
        if path.is_file():
            files += 1
            lines += path.read_bytes().count(b"\n")
    return files, lines


def _ruff() -> str:
    local = Path(sys.executable).with_name("ruff")
    found = str(local) if local.exists() else shutil.which("ruff")
    if not found:
        raise BenchError("ruff is not installed: pip install ruff")
    return found


def _time(
    tool: str, argv: list[str], rounds: int, budget: Budget, env: dict[str, str] | None = None
) -> Timing:
    seconds: list[float] = []
    codes: Counter[str] = Counter()
    for _ in range(rounds):
        start = time.perf_counter()
        out = _run(argv, budget, env=env)
        seconds.append(time.perf_counter() - start)
        codes = Counter(m.group(1) for m in map(_FINDING.match, out.splitlines()) if m)
    findings = sum(codes.values())
    print(f"  {tool:<11} {statistics.median(seconds):8.2f} s  {findings:6d} findings", flush=True)
    return Timing(tool, " ".join(argv), seconds, findings, dict(codes.most_common()))


def _compile_bytecode(budget: Budget) -> None:
    """Byte-compile hangdoctor and its packages, as `pip install` leaves an installed tool.

    Without it (an editable install, or PYTHONDONTWRITEBYTECODE set, as on some CI
    machines) every run compiles its modules from source again, a third of a second
    that ruff, a compiled binary, never pays.
    """
    import hangdoctor

    folders = {str(Path(hangdoctor.__file__).resolve().parent), sysconfig.get_paths()["purelib"]}
    print("byte-compiling hangdoctor and its packages ...", flush=True)
    _run([sys.executable, "-m", "compileall", "-q", "-j", "0", *sorted(folders)], budget)


def _start_method() -> str:
    """How the scan starts its worker processes, for the floor to start its own alike."""
    from hangdoctor.scan.workers import pool_start_method

    return pool_start_method()


def _hangdoctor_cache_flag() -> list[str]:
    """`--cache-dir` is used when the scan command has it (it has none today)."""
    out = subprocess.run(
        [sys.executable, "-m", "hangdoctor", "scan", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise BenchError("`hangdoctor scan` is not available in this build: " + out.stderr.strip())
    return ["--cache-dir"] if "--cache-dir" in out.stdout else []


def bench(args: argparse.Namespace, work: Path) -> dict[str, object]:
    budget = Budget(args.budget, args.step_timeout)
    corpus = _install_corpus(work, args.packages, budget)
    files, lines = _count_lines(corpus)
    print(f"corpus: {files} files, {lines:,} lines", flush=True)
    if lines < MIN_LINES:
        raise BenchError(f"the corpus has {lines:,} lines, fewer than {MIN_LINES:,}: add packages")
    flake8 = None if args.flake8_rounds == 0 else _install_flake8(work, budget)

    _compile_bytecode(budget)
    jobs = args.jobs or os.cpu_count() or 1
    scan = [
        *[sys.executable, "-m", "hangdoctor", "scan", str(corpus)],
        *["--format", "concise", "--jobs", str(jobs)],
    ]
    floor = [sys.executable, str(FLOOR), str(corpus), str(jobs), _start_method()]
    cache_flag = _hangdoctor_cache_flag()
    results: list[Timing] = []
    print(f"timing ({args.rounds} rounds each, median; {jobs} worker processes):", flush=True)
    # floor and cold in turns, so a neighbour's load falls on both alike
    floors: list[float] = []
    colds: list[float] = []
    cold = None
    for _ in range(args.rounds):
        floors += _time("floor", floor, 1, budget).seconds
        cold = _time("cold", [*scan, "--no-cache"], 1, budget)
        colds += cold.seconds
    assert cold is not None  # rounds >= 1
    results.append(Timing("floor", " ".join(floor), floors, 0, {}))
    print("measuring peak memory (untimed runs) ...", flush=True)
    rss, pss, _ = _peak_rss([*scan, "--no-cache"], budget)
    results.append(replace(cold, seconds=colds, peak_rss=rss, peak_pss=pss))

    cold_cache: list[float] = []
    warm: list[float] = []
    first = second = None
    for n in range(args.rounds):
        # a fresh, empty cache every round: the scan keeps it in the project root
        # (here the corpus), or under XDG_CACHE_HOME when the root is read-only
        shutil.rmtree(corpus / CACHE_DIR, ignore_errors=True)
        cache = work / f"cache-{n}"
        cache.mkdir()
        env = dict(os.environ, XDG_CACHE_HOME=str(cache))
        argv = [*scan, *cache_flag, str(cache)] if cache_flag else scan
        first = _time("cold-cache", argv, 1, budget, env)
        second = _time("warm", argv, 1, budget, env)
        cold_cache += first.seconds
        warm += second.seconds
    assert first is not None and second is not None  # rounds >= 1
    results.append(Timing("cold-cache", " ".join(scan), cold_cache, first.findings, first.codes))
    results.append(Timing("warm", f"{' '.join(scan)} (again)", warm, second.findings, second.codes))

    ruff = [
        _ruff(),
        "check",
        "--isolated",
        "--select",
        "ASYNC",
        "--no-cache",
        "--output-format",
        "concise",
        str(corpus),
    ]
    results.append(_time("ruff", ruff, args.rounds, budget))
    if flake8 is not None:
        results.append(
            _time(
                "flake8",
                [str(flake8), "--isolated", "--select", "ASYNC", str(corpus)],
                args.flake8_rounds,
                budget,
            )
        )

    huge = _huge_module(work, HUGE_SIZE)
    start = time.perf_counter()
    huge_rss, huge_pss, said = _peak_rss([*scan[:4], str(huge), "--no-cache"], budget)
    huge_seconds = time.perf_counter() - start
    if "not scanned" not in said:
        raise BenchError(f"the {HUGE_SIZE >> 20} MB module was not reported as skipped: {said}")
    print(f"  huge        {huge_seconds:8.2f} s  (a {HUGE_SIZE >> 20} MB generated module)")

    by = {t.tool: t for t in results}
    ratios = {"cold / floor (target <= 2)": by["cold"].median / by["floor"].median}
    if "flake8" in by:
        ratios["flake8 / cold (target >= 3)"] = by["flake8"].median / by["cold"].median
        ratios["flake8 / cold-cache"] = by["flake8"].median / by["cold-cache"].median
    ratios |= {
        "ruff / warm (target >= 1)": by["ruff"].median / by["warm"].median,
        "ruff / cold": by["ruff"].median / by["cold"].median,
    }
    return {
        "packages": args.packages,
        "files": files,
        "lines": lines,
        "cpus": os.cpu_count(),
        "jobs": jobs,
        "python": sys.version.split()[0],
        "results": [
            asdict(t) | {"median": t.median, "lines_per_s": lines / t.median} for t in results
        ],
        "ratios": ratios,
        "huge_module": {
            "bytes": huge.stat().st_size,
            "seconds": huge_seconds,
            "peak_rss": huge_rss,
            "peak_pss": huge_pss,
        },
        "targets_met": {
            "cold <= 2x the parse floor": ratios["cold / floor (target <= 2)"] <= 2,
            "cold >= 3x faster than flake8-async": (
                ratios["flake8 / cold (target >= 3)"] >= 3 if "flake8" in by else None
            ),
            "warm no slower than ruff": ratios["ruff / warm (target >= 1)"] >= 1,
        },
    }


def _print(report: dict[str, Any]) -> None:
    print()
    print(
        f"{report['lines']:,} lines in {report['files']} files "
        f"({', '.join(report['packages'])}), {report['cpus']} CPUs, Python {report['python']}"
    )
    print(
        f"{'tool':<11} {'median s':>9} {'lines/s':>12} {'findings':>9} {'peak RSS':>10}"
        f" {'peak PSS':>10}"
    )
    for row in report["results"]:
        print(
            f"{row['tool']:<11} {row['median']:9.2f} {row['lines_per_s']:12,.0f} "
            f"{row['findings']:9d} {_mb(row['peak_rss']):>10} {_mb(row['peak_pss']):>10}"
        )
    huge = report["huge_module"]
    print(
        f"a {_mb(huge['bytes'])} generated module: {huge['seconds']:.2f} s, "
        f"peak RSS {_mb(huge['peak_rss'])}, PSS {_mb(huge['peak_pss'])} "
        "(skipped over --max-file-size, not parsed)"
    )
    for row in report["results"]:
        top = ", ".join(f"{code} {n}" for code, n in list(row["codes"].items())[:8])
        print(f"  {row['tool']:<11} {top}")
    for name, value in report["ratios"].items():
        print(f"{name:<30} {value:6.2f}x")
    for name, ok in report["targets_met"].items():
        print(f"target {name}: {'not measured' if ok is None else 'met' if ok else 'NOT met'}")


def _mb(size: int | None) -> str:
    return "n/a" if size is None else f"{size / (1 << 20):.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per hangdoctor/ruff timing")
    parser.add_argument(
        "--flake8-rounds",
        type=int,
        default=1,
        help="flake8 takes minutes: 1 round by default; 0 leaves it out",
    )
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument("--budget", type=float, default=2400.0, help="seconds for the whole run")
    parser.add_argument("--step-timeout", type=float, default=1200.0, help="seconds per command")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.flake8_rounds < 0:
        parser.error("--rounds must be at least 1 and --flake8-rounds at least 0")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="hangdoctor-bench-scan-"))
    try:
        report = bench(args, work)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
