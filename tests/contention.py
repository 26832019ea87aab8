"""Deliberate CPU contention for tests: busy-loop processes sharing one CPU with the target.

A loaded machine (more runnable threads than cores) or a container at its CPU
limit gives a thread that computes all the time only a share of a CPU. To make
that happen every time on any machine, the burners and the thing under test
are pinned to the same CPU: with `cores + 1` burners there, the target gets at
most a quarter of it on a 2-core machine, whatever else runs on the others.

Every burner ends by itself at its own deadline even if the test process dies,
and is stopped by PID (terminate, kill, wait with a timeout) when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "CpuLimit",
    "burning",
    "contended_cpu",
    "cpu_limited",
    "pin_process",
    "pinned_argv",
    "pinned_thread",
]

_BURN = (
    "import os, sys, time\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
# A burner lives this long at most: longer than any test that uses it.
_LIFETIME_S = 120.0
# Python wrapper that pins itself (and, if asked, takes the lowest scheduling class), then
# becomes the command: every thread and child process inherits both.
_PIN_EXEC = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "if sys.argv[2] == 'idle':\n"
    "    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def contended_cpu() -> int:
    """The CPU the tests crowd: the last one this process may run on."""
    return max(os.sched_getaffinity(0))


@contextlib.contextmanager
def burning(cpu: int, count: int | None = None) -> Iterator[list[int]]:
    """`count` busy loops pinned to `cpu` (cores + 1 by default) while the block runs: pids."""
    n = count if count is not None else (os.cpu_count() or 1) + 1
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _BURN, str(cpu), str(_LIFETIME_S)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        _wait_until_burning([p.pid for p in procs], cpu)
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_until_burning(pids: Sequence[int], cpu: int, timeout: float = 20.0) -> None:
    """Until every burner has pinned itself and is running its loop (state R)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_state(p) == "R" and os.sched_getaffinity(p) == {cpu} for p in pids):
            return
        time.sleep(0.02)
    raise AssertionError(f"the CPU burners {list(pids)} did not start within {timeout:g} s")


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pinned_argv(argv: Sequence[str], cpu: int, *, starved: bool = False) -> list[str]:
    """`argv` run pinned to `cpu`, with every thread and child process it starts.

    `starved`: in the SCHED_IDLE class too, which runs only when no ordinary thread
    wants that CPU: beside the burners the target is runnable but hardly ever runs,
    as in a container throttled at a tiny CPU limit.
    """
    return [sys.executable, "-c", _PIN_EXEC, str(cpu), "idle" if starved else "-", *argv]


def pin_process(pid: int, cpu: int) -> None:
    """Pin every thread `pid` has now to `cpu` (threads started later inherit it)."""
    for name in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(name), {cpu})


@contextlib.contextmanager
def pinned_thread(cpu: int) -> Iterator[None]:
    """The calling thread (and the threads it starts meanwhile) runs on `cpu` only."""
    tid = threading.get_native_id()
    before = os.sched_getaffinity(tid)
    os.sched_setaffinity(tid, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(tid, before)


@dataclass(frozen=True)
class CpuLimit:
    """A cgroup that limits a process's CPU, as a container's CPU limit does."""

    path: Path
    version: int  # 1 (cpu controller hierarchy) or 2 (unified)

    def throttled(self) -> int:
        """How many periods the group has been throttled in so far."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        raise AssertionError(f"no nr_throttled in {self.path / 'cpu.stat'}")

    def wait_for_throttle(self, timeout: float = 10.0) -> None:
        """Return right after the group has used up its quota: a throttled period begins."""
        start = self.throttled()
        deadline = time.monotonic() + timeout
        while self.throttled() == start:
            if time.monotonic() > deadline:
                raise AssertionError(f"the CPU limit never throttled within {timeout:g} s")
            time.sleep(0.002)


def _cpu_hierarchy() -> tuple[Path, int] | None:
    """Where a cpu-controller cgroup can be made: (mount point, cgroup version), if anywhere."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    for line in mounts:
        fields = line.split()
        if len(fields) > 3 and fields[2] == "cgroup" and "cpu" in fields[3].split(","):
            return Path(fields[1]), 1
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            root = Path(fields[1])
            with contextlib.suppress(OSError):
                if "cpu" in (root / "cgroup.subtree_control").read_text().split():
                    return root, 2
    return None


def _current_group(pid: int, version: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == 1 and "cpu" in controllers.split(",")) or (version == 2 and not controllers):
            return path
    return "/"


@contextlib.contextmanager
def cpu_limited(pid: int, *, quota_s: float, period_s: float) -> Iterator[CpuLimit]:
    """Process `pid` may run `quota_s` of CPU per `period_s` while the block runs.

    A throttled thread stays runnable: the kernel counts the time as waiting for
    a CPU, exactly as for a Kubernetes CPU limit. The process is moved back to its
    own cgroup and the test's cgroup removed at the end. Skips the test, saying
    why, where no cpu controller can be used (no root, a container without it).
    """
    found = _cpu_hierarchy()
    if found is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup cpu controller to impose a CPU limit")
    root, version = found
    home = root / _current_group(pid, version).lstrip("/")
    group = root / f"hangdoctor-test-{uuid.uuid4().hex[:8]}"
    quota_us, period_us = max(1000, int(quota_s * 1e6)), int(period_s * 1e6)
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup under {root}: {exc}")
    try:
        if version == 1:
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (group / "cpu.max").write_text(f"{quota_us} {period_us}")
        (group / "cgroup.procs").write_text(str(pid))
        yield CpuLimit(group, version)
    finally:
        with contextlib.suppress(OSError):  # gone already: nothing to move
            (home / "cgroup.procs").write_text(str(pid))
        deadline = time.monotonic() + 10
        while True:
            try:
                group.rmdir()
                break
            except OSError:  # the moved process is still leaving it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
