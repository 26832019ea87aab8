"""Reading /proc or /sys, or writing /dev/null, is no disk wait: no HD205 for those paths."""

from __future__ import annotations

from tests.scan.conftest import run_scan

SOURCE = """\
import os


async def stats(pid):
    with open(f"/proc/{pid}/status") as fh:  # kernel: proc f-string
        fh.read()
    fd = os.open("/sys/fs/cgroup/cpu.max", os.O_RDONLY)  # kernel: sys
    os.close(fd)
    with open("/dev/null", "w") as sink:  # kernel: null
        sink.write("x")
    with open(file="/proc/self/stat") as fh:  # kernel: keyword
        fh.read()


async def disk(name, pid):
    with open(f"/var/lib/app/{pid}") as fh:  # disk: f-string elsewhere
        fh.read()
    with open("/procedures.txt") as fh:  # disk: a name that only starts like /proc
        fh.read()
    with open("/dev/nullify") as fh:  # disk: not the null device
        fh.read()
    with open(name) as fh:  # disk: unknown path
        fh.read()
"""


def _line(marker: str) -> int:
    return next(n for n, text in enumerate(SOURCE.splitlines(), 1) if f"# {marker}" in text)


def test_kernel_files_are_not_disk_waits_and_other_paths_still_are(write) -> None:  # type: ignore[no-untyped-def]
    root = write({"app.py": SOURCE})
    result = run_scan([root], root)
    opened = sorted(f.line for f in result.findings if f.code == "HD205")
    assert opened == sorted(
        _line(m)
        for m in (
            "disk: f-string elsewhere",
            "disk: a name that only starts like /proc",
            "disk: not the null device",
            "disk: unknown path",
        )
    ), [f"{f.line} {f.code} {f.message}" for f in result.findings]
