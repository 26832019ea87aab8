"""Benchmark: how long the watchdog's stuck-task check holds the event loop.

Run: .venv/bin/python bench/tasks.py [--rounds 7] [--counts 100,1000,10000] [--remote]

The check runs on the loop, between callbacks, so while it runs nothing else
does: its duration is the latency it adds to every request of that moment.
For 100, 1,000 and 10,000 idle tasks (request-like await chains 8 coroutines
deep: most parked on an Event, some inside `async with` a semaphore, some on a
Queue), measured side by side in one process, each the median over --rounds,
from inside a loop callback as the watchdog runs them:

  all_tasks    asyncio.all_tasks(): the floor any look at the tasks pays
  get_stack    asyncio's own dump, `task.get_stack()` for every task: the reference
  waits        the cheap pass (`TaskTracker.waits`): is each task parked on the same
               future as last time; no frames, no locals. It runs at every check
               (every min(stuck_after / 4, 5 s))
  snapshot     every task read anew (`snapshot_tasks`): await chain, what it waits on
               and holds, its request; the cost of a look at tasks that all moved
  judge        `judge_tasks` on that snapshot: the HD6xx verdicts
  full check   what the watchdog does when a look is due (`LoopWatchdog.check_tasks`):
               snapshot + judge + its episode book-keeping. It runs when a task has
               newly waited past stuck_after, at least every stuck_after, and at
               every check while the server shuts down. Its tracker reads again only
               the tasks that moved since its last look (here: none), and only the
               counters and requests of the others

Ratios to get_stack make the figures comparable across machines. The share of
loop time at the default stuck_after (30 s: a cheap pass every 5 s, a full
look every 30 s) is printed last. Target: the full check at most 5 ms with
1,000 tasks; the cheap pass far below it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hangdoctor.analysis.source import SourceReader  # noqa: E402
from hangdoctor.analysis.tasks import judge_tasks  # noqa: E402
from hangdoctor.model import Snapshot  # noqa: E402
from hangdoctor.runtime import LoopWatchdog  # noqa: E402
from hangdoctor.runtime.tasks import TaskTracker, snapshot_tasks  # noqa: E402
from hangdoctor.runtime.watchdog import check_period  # noqa: E402

DEPTH = 8  # coroutines in each task's await chain, as a request through a few layers
TARGET_MS = 5.0  # the full check at 1,000 tasks


class Service:
    """Idle request-like tasks: parked on an event, a queue, or inside `async with` a semaphore."""

    def __init__(self) -> None:
        self.news = asyncio.Event()
        self.jobs: asyncio.Queue[int] = asyncio.Queue()
        self.slots = asyncio.BoundedSemaphore(10_000)

    async def handler(self, n: int, depth: int) -> None:
        if depth > 0:
            await self.handler(n, depth - 1)
        elif n % 10 == 0:
            async with self.slots:
                await self.news.wait()
        elif n % 10 == 1:
            await self.jobs.get()
        else:
            await self.news.wait()


async def _time(fn: Callable[[], Any], rounds: int) -> float:
    """The median milliseconds of `fn` run as one loop callback, as the watchdog runs its check."""
    loop = asyncio.get_running_loop()
    values: list[float] = []
    for _ in range(rounds):
        done: asyncio.Future[float] = loop.create_future()

        def callback(done: asyncio.Future[float] = done) -> None:
            start = time.perf_counter()
            fn()
            done.set_result(time.perf_counter() - start)

        loop.call_soon(callback)
        values.append(await done * 1000)
        await asyncio.sleep(0.01)
    return statistics.median(values)


async def measure(count: int, rounds: int) -> dict[str, float]:
    service = Service()
    tasks = [asyncio.create_task(service.handler(n, DEPTH - 2)) for n in range(count)]
    await asyncio.sleep(0.2)  # every task parked
    tracker = TaskTracker()
    tracker.waits()
    cwd = os.getcwd()
    pid = os.getpid()

    def judge() -> None:
        snap = Snapshot(
            pid=pid,
            taken_at=time.time(),
            threads=(),
            source="watchdog",
            cwd=cwd,
            tasks=snapshot,
            tasks_source="runtime",
        )
        judge_tasks(pid, [snap], SourceReader(cwd=cwd), stuck_after=30.0)

    snapshot = snapshot_tasks(waiting=tracker.waits())
    dog = LoopWatchdog(60.0, log=False, stuck_after=30.0)
    dog.start()
    try:
        dog.check_tasks()  # the first look reads every file once
        figures = {
            "all_tasks": await _time(asyncio.all_tasks, rounds),
            "get_stack": await _time(lambda: [t.get_stack() for t in asyncio.all_tasks()], rounds),
            "waits": await _time(tracker.waits, rounds),
            "snapshot": await _time(lambda: snapshot_tasks(waiting=tracker.waits()), rounds),
            "judge": await _time(judge, rounds),
            "full check": await _time(dog.check_tasks, rounds),
        }
    finally:
        await dog.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="also read the tasks of a CPython 3.14 process from outside (root only)",
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    print(
        f"hangdoctor task-check benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print(f"  idle tasks, await chains {DEPTH} deep; median of {args.rounds} loop callbacks, ms")
    results = {n: asyncio.run(measure(n, args.rounds)) for n in counts}
    names = list(next(iter(results.values())))
    print(f"\n  {'':<12}" + "".join(f"{n:>12,} tasks" for n in counts) + "   x get_stack")
    for name in names:
        row = "".join(f"{results[n][name]:>18.2f}" for n in counts)
        ratios = " / ".join(f"{results[n][name] / results[n]['get_stack']:.1f}" for n in counts)
        print(f"  {name:<12}{row}   {ratios}")
    print("\n  per task, microseconds")
    for name in ("waits", "snapshot", "judge", "full check"):
        row = "".join(f"{results[n][name] * 1000 / n:>18.1f}" for n in counts)
        print(f"  {name:<12}{row}")
    if 1000 in results:
        r = results[1000]
        print(
            f"\n  1,000 tasks: full check {r['full check']:.1f} ms (target {TARGET_MS:g} ms: "
            f"{'met' if r['full check'] <= TARGET_MS else 'missed'}); cheap pass "
            f"{r['waits']:.2f} ms, {r['full check'] / max(r['waits'], 1e-9):.0f}x less"
        )
    period = check_period(30.0)
    print(
        "\n  share of loop time at stuck_after 30 s "
        f"(cheap pass every {period:g} s, full look every 30 s)"
    )
    for n in counts:
        r = results[n]
        share = (r["waits"] / period + r["full check"] / 30.0) / 1000
        print(f"  {n:>7,} tasks  {share * 100:.3f} %")
    if args.remote:
        remote(counts, args.rounds)


# -- from outside, CPython 3.14 -------------------------------------------------------------

_TARGET_REMOTE_S = 0.3  # reading 10,000 tasks from outside
_PROGRAM = """\
import asyncio, sys

async def leaf(ev):
    await ev.wait()

async def handler(ev, depth):
    if depth:
        await handler(ev, depth - 1)
    else:
        await leaf(ev)

async def main(n):
    ev = asyncio.Event()
    tasks = [asyncio.create_task(handler(ev, DEPTH)) for _ in range(n)]
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(int(sys.argv[1])))
"""


def remote(counts: list[int], rounds: int) -> None:
    """`read_tasks` (what `diagnose` does) against `python -m asyncio pstree`, same process.

    The target runs on Debian's python3.14 in the root scripts/py314-root builds (root
    only). Both read through CPython's own `_remote_debugging`; pstree runs in the
    target's mount namespace, as `read_tasks` does for a chrooted target.
    """
    import shutil
    import subprocess
    import tempfile

    from hangdoctor.capture.remote_tasks import read_tasks

    script = ROOT / "scripts" / "py314-root"
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        print("\n  from outside: skipped (needs root and nsenter for the Python 3.14 root)")
        return
    built = subprocess.run(
        [str(script), "build"], capture_output=True, text=True, timeout=1800, check=False
    )
    if built.returncode != 0:
        print(f"\n  from outside: skipped (no Python 3.14 root: {built.stderr.strip()[-200:]})")
        return
    print("\n  from outside, CPython 3.14 (median of", rounds, "reads, s)")
    print(f"  {'tasks':>8} {'read_tasks':>11} {'pstree':>8} {'ratio':>6}")
    work = tempfile.mkdtemp(prefix="hangdoctor-bench-")
    (Path(work) / "many.py").write_text(_PROGRAM.replace("DEPTH", str(DEPTH - 2)))
    try:
        for n in counts:
            proc = subprocess.Popen(
                [str(script), "run", "--bind", f"{work}:/bench", "--",
                 "/usr/bin/python3.14", "/bench/many.py", str(n)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True,
            )  # fmt: skip
            try:
                assert proc.stdout is not None
                proc.stdout.readline()  # "ready"
                pid = _python_child(proc.pid)
                reads, trees = [], []
                for _ in range(rounds):
                    started = time.perf_counter()
                    read_tasks(pid, timeout=60)
                    reads.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    subprocess.run(
                        ["nsenter", "-t", str(pid), "-m", "-r", "-w", "--",
                         "/usr/bin/python3.14", "-m", "asyncio", "pstree", str(pid)],
                        capture_output=True, timeout=120, check=False,
                    )  # fmt: skip
                    trees.append(time.perf_counter() - started)
                read, tree = statistics.median(reads), statistics.median(trees)
                print(f"  {n:>8,} {read:>11.3f} {tree:>8.3f} {read / tree:>6.2f}")
            finally:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"  target: read_tasks at 10,000 tasks within {_TARGET_REMOTE_S} s; CPython's own "
        "reader (get_all_awaited_by) is the floor of both columns"
    )


def _python_child(pid: int) -> int:
    """The python3.14 under the root's wrapper processes (unshare, chroot)."""
    for _ in range(200):
        found = [pid]
        while found:
            current = found.pop()
            try:
                if os.readlink(f"/proc/{current}/exe").endswith("python3.14"):
                    return current
                with open(f"/proc/{current}/task/{current}/children") as fh:
                    found.extend(int(x) for x in fh.read().split())
            except OSError:
                continue
        time.sleep(0.05)
    raise SystemExit("the Python 3.14 target did not start")


if __name__ == "__main__":
    main()
