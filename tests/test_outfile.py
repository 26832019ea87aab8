"""`hangdoctor.outfile`: every output file is whole or untouched, on a real filesystem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hangdoctor.outfile import check_writable, is_read_only, write_atomic
from tests.tmpfs import fill, tiny_tmpfs


def test_new_file_gets_the_usual_mode_and_nothing_else_is_left(tmp_path: Path) -> None:
    """A new file is 0666 minus the umask (as `open(path, "w")`), not mkstemp's 0600."""
    out = write_atomic(tmp_path / "report.txt", "données\n")
    assert out == tmp_path / "report.txt"
    assert out.read_text(encoding="utf-8") == "données\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_existing_file_keeps_its_mode_and_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    """Replacing keeps the old mode; through a symlink the target is replaced, not the link."""
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_full_disk_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """GIVEN a full filesystem WHEN a bigger file is written THEN OSError(ENOSPC), the old
    file is byte for byte the same and no temporary file is left."""
    with tiny_tmpfs(tmp_path / "disk") as disk:
        write_atomic(disk / "out.json", "x" * 2000)
        fill(disk)
        with pytest.raises(OSError) as info:
            write_atomic(disk / "out.json", "y" * 20_000)
        assert info.value.strerror == "No space left on device"
        assert (disk / "out.json").read_text() == "x" * 2000
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "out.json"]


def test_check_writable_says_why(tmp_path: Path) -> None:
    """Each reason a path cannot be written is named before any work is done."""
    (tmp_path / "ro.txt").write_text("x")
    (tmp_path / "ro.txt").chmod(0o444)
    (tmp_path / "file").write_text("x")
    assert check_writable(tmp_path / "ok.txt") is None
    assert "does not exist" in (check_writable(tmp_path / "missing" / "x.txt") or "")
    assert check_writable(tmp_path) == "it is a directory"
    assert "is not a directory" in (check_writable(tmp_path / "file" / "x.txt") or "")
    assert check_writable(tmp_path / "ro.txt") == "the file is read-only"
    assert is_read_only(tmp_path / "ro.txt") and not is_read_only(tmp_path / "file")
