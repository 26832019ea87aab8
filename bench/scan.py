"""Benchmark: `hangdoctor scan` against ruff's and flake8-async's ASYNC rules on real code.

Run: .venv/bin/python bench/scan.py [--rounds 3] [--flake8-rounds 1] [--packages ...] [--keep]

In one run, on one tree of real Python installed from PyPI (default: the sources
of Django and SQLAlchemy, over 400k lines), it times:
  cold        hangdoctor scan --no-cache           (nothing reused)
  cold-cache  hangdoctor scan with a fresh, empty cache (first run fills it)
  warm        hangdoctor scan again with that cache (nothing changed)
  ruff        ruff check --select ASYNC --no-cache
  flake8      flake8 --select ASYNC (flake8-async plugin), in a throwaway venv
and prints wall time (median of the rounds), lines per second, the number of
findings each reports, and the ratios behind the issue's targets: the cold scan
at least 3x faster than flake8-async, the warm scan no slower than ruff.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("django==5.2.19", "sqlalchemy==2.1.9")
FLAKE8 = ("flake8", "flake8-async")
MIN_LINES = 300_000
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
    flake8 = _install_flake8(work, budget)

    _compile_bytecode(budget)
    scan = [sys.executable, "-m", "hangdoctor", "scan", str(corpus), "--format", "concise"]
    cache_flag = _hangdoctor_cache_flag()
    results: list[Timing] = []
    print(f"timing ({args.rounds} rounds each, median):", flush=True)
    results.append(_time("cold", [*scan, "--no-cache"], args.rounds, budget))

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
    results.append(
        _time(
            "flake8",
            [str(flake8), "--isolated", "--select", "ASYNC", str(corpus)],
            args.flake8_rounds,
            budget,
        )
    )

    by = {t.tool: t for t in results}
    ratios = {
        "flake8 / cold (target >= 3)": by["flake8"].median / by["cold"].median,
        "flake8 / cold-cache": by["flake8"].median / by["cold-cache"].median,
        "ruff / warm (target >= 1)": by["ruff"].median / by["warm"].median,
        "ruff / cold": by["ruff"].median / by["cold"].median,
    }
    return {
        "packages": args.packages,
        "files": files,
        "lines": lines,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "results": [
            asdict(t) | {"median": t.median, "lines_per_s": lines / t.median} for t in results
        ],
        "ratios": ratios,
        "targets_met": {
            "cold >= 3x faster than flake8-async": ratios["flake8 / cold (target >= 3)"] >= 3,
            "warm no slower than ruff": ratios["ruff / warm (target >= 1)"] >= 1,
        },
    }


def _print(report: dict[str, Any]) -> None:
    print()
    print(
        f"{report['lines']:,} lines in {report['files']} files "
        f"({', '.join(report['packages'])}), {report['cpus']} CPUs, Python {report['python']}"
    )
    print(f"{'tool':<11} {'median s':>9} {'lines/s':>12} {'findings':>9}")
    for row in report["results"]:
        print(
            f"{row['tool']:<11} {row['median']:9.2f} {row['lines_per_s']:12,.0f} "
            f"{row['findings']:9d}"
        )
    for row in report["results"]:
        top = ", ".join(f"{code} {n}" for code, n in list(row["codes"].items())[:8])
        print(f"  {row['tool']:<11} {top}")
    for name, value in report["ratios"].items():
        print(f"{name:<30} {value:6.2f}x")
    for name, ok in report["targets_met"].items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per hangdoctor/ruff timing")
    parser.add_argument(
        "--flake8-rounds", type=int, default=1, help="flake8 takes minutes: 1 round by default"
    )
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    parser.add_argument("--budget", type=float, default=2400.0, help="seconds for the whole run")
    parser.add_argument("--step-timeout", type=float, default=1200.0, help="seconds per command")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.flake8_rounds < 1:
        parser.error("--rounds and --flake8-rounds must be at least 1")
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
