"""A real, tiny filesystem to fill up: how a full disk is tested (no mocked `write`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fill", "tiny_tmpfs"]


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "16k") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `where` (created) for the block; unmounted afterwards.

    Skips the test when not root: only root may mount.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        check=True,
        timeout=30,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem of `folder` has no space left; the file."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "ab") as fh:
        while True:
            fh.write(b"\0" * 1024)
            fh.flush()
    return filler
