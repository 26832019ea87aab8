"""fix_file: encoding, BOM, line endings, atomic writes and permissions, on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hangdoctor.fix import FixSite, fix_file
from hangdoctor.fix.files import atomic_write

SLEEPY = "import asyncio\nimport time\n\n\nasync def poll():\n    time.sleep(1)\n    return 1\n"
SITE = FixSite("HD201", 6, 4)


def _write(tmp_path: Path, data: bytes, name: str = "mod.py") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_utf8_file_is_fixed_in_place_and_diff_has_git_headers(tmp_path: Path) -> None:
    """A plain UTF-8 file is rewritten with the fix; diff() has a/ and b/ headers."""
    path = _write(tmp_path, SLEEPY.encode())
    result = fix_file(path, [SITE])
    assert result.written
    # `import time` goes with its last use
    assert path.read_text(encoding="utf-8") == SLEEPY.replace(
        "time.sleep(1)", "await asyncio.sleep(1)"
    ).replace("import time\n", "")
    diff = result.diff("mod.py")
    assert diff.startswith("--- a/mod.py\n+++ b/mod.py\n")
    assert "-    time.sleep(1)\n+    await asyncio.sleep(1)\n" in diff


def test_latin1_coding_line_keeps_the_encoding_and_non_ascii_text(tmp_path: Path) -> None:
    """A latin-1 file with a PEP 263 line is decoded and written back in latin-1."""
    text = (
        "# -*- coding: latin-1 -*-\nimport time\n\nGREETING = 'grüße, café'\n\n\n"
        "async def poll():\n    time.sleep(1)  # äöü\n"
    )
    path = _write(tmp_path, text.encode("latin-1"))
    result = fix_file(path, [FixSite("HD201", 8, 4)])
    assert result.encoding == "iso-8859-1"
    assert result.written
    data = path.read_bytes()
    assert "grüße, café".encode("latin-1") in data
    assert "await asyncio.sleep(1)  # äöü".encode("latin-1") in data
    assert b"\nimport asyncio\n\nGREETING" in data  # `import time` went with its last use
    data.decode("latin-1")
    assert "grüße".encode() not in data  # not silently turned into UTF-8


def test_bom_is_kept(tmp_path: Path) -> None:
    """A UTF-8 file with a BOM keeps it; the rest changes only at the fix."""
    path = _write(tmp_path, b"\xef\xbb\xbf" + SLEEPY.encode())
    result = fix_file(path, [SITE])
    assert result.encoding == "utf-8-sig"
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfimport asyncio\n")
    assert data.count(b"\xef\xbb\xbf") == 1
    assert b"    await asyncio.sleep(1)\n" in data


def test_crlf_file_stays_crlf_byte_for_byte(tmp_path: Path) -> None:
    """CRLF endings survive: the result is the LF result with every LF turned into CRLF."""
    path = _write(tmp_path, SLEEPY.replace("\n", "\r\n").encode())
    fix_file(path, [SITE])
    expected = SLEEPY.replace("time.sleep(1)", "await asyncio.sleep(1)")
    expected = expected.replace("import time\n", "").replace("\n", "\r\n")
    assert path.read_bytes() == expected.encode()


def test_crlf_file_takes_crlf_for_added_lines(tmp_path: Path) -> None:
    """Lines a fix adds (an import) take the file's ending."""
    src = "import time\r\n\r\n\r\nasync def poll():\r\n    time.sleep(1)\r\n"
    path = _write(tmp_path, src.encode())
    fix_file(path, [FixSite("HD201", 5, 4)])
    assert path.read_bytes() == (
        b"import asyncio\r\n\r\n\r\nasync def poll():\r\n    await asyncio.sleep(1)\r\n"
    )


def test_mixed_endings_untouched_lines_keep_theirs(tmp_path: Path) -> None:
    """In a mixed file, untouched lines keep their own ending and new lines the dominant one."""
    src = (
        "import time\r\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "POOL, CLOCK = ThreadPoolExecutor, time  # keep the imports in use\r\n"
        "\r\n"
        "async def job(loop):  # LF\n"
        "    with ThreadPoolExecutor() as ex:\r\n"
        "        x = await loop.run_in_executor(ex, len, 'abc')\n"
        "    time.sleep(x)\r"
        "    return x\r\n"
    )
    path = _write(tmp_path, src.encode())
    result = fix_file(path, [FixSite("HD101", 6, 4), FixSite("HD201", 8, 4)])
    assert len(result.outcome.applied) == 2
    data = path.read_bytes().decode()
    lines = data.splitlines(keepends=True)
    assert lines[0] == "import asyncio\r\n"  # added: CRLF is the dominant ending
    assert lines[1] == "import time\r\n"
    assert lines[2] == "from concurrent.futures import ThreadPoolExecutor\n"
    assert lines[5] == "async def job(loop):  # LF\n"
    # the CRLF `with` line is gone; the LF line under it keeps its LF
    assert lines[6] == "    x = await loop.run_in_executor(None, len, 'abc')\n"
    assert "    await asyncio.sleep(x)\r" in lines
    assert lines[-1] == "    return x\r\n"
    # the \r-terminated line is one line to Python too: the file still compiles the same way
    compile(data, "mixed", "exec")


def test_no_trailing_newline_is_kept(tmp_path: Path) -> None:
    """A file without a final newline still has none after the fix."""
    path = _write(tmp_path, SLEEPY.rstrip("\n").encode())
    fix_file(path, [SITE])
    assert path.read_bytes().endswith(b"    return 1")
    assert "\\ No newline at end of file" not in fix_file(path, []).diff()


def test_permissions_are_kept_and_no_temp_file_is_left(tmp_path: Path) -> None:
    """chmod 640 stays 640 after the atomic replace, and the directory holds only the file."""
    path = _write(tmp_path, SLEEPY.encode())
    path.chmod(0o640)
    before_inode = path.stat().st_ino
    result = fix_file(path, [SITE])
    assert result.written
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != before_inode  # replaced, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mod.py"]


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    """A 755 script stays executable."""
    path = _write(tmp_path, b"#!/usr/bin/env python3\n" + SLEEPY.encode())
    path.chmod(0o755)
    fix_file(path, [FixSite("HD201", 7, 4)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_symlink_stays_a_symlink(tmp_path: Path) -> None:
    """Fixing through a symlink rewrites the target and keeps the link."""
    real = _write(tmp_path, SLEEPY.encode(), "real.py")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    fix_file(link, [SITE])
    assert link.is_symlink()
    assert "await asyncio.sleep(1)" in real.read_text(encoding="utf-8")


def test_unchanged_text_is_never_written(tmp_path: Path) -> None:
    """When no fix applies the file is not touched at all (same inode, same mtime)."""
    path = _write(tmp_path, SLEEPY.encode())
    os.utime(path, (1_000_000, 1_000_000))
    st = path.stat()
    result = fix_file(path, [FixSite("HD201", 1, 0)])
    assert not result.written and not result.changed
    assert result.diff() == ""
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime == st.st_mtime


def test_write_false_only_reports(tmp_path: Path) -> None:
    """write=False (--diff) computes the fix and the diff but leaves the file alone."""
    path = _write(tmp_path, SLEEPY.encode())
    result = fix_file(path, [SITE], write=False)
    assert result.changed and not result.written
    assert "+    await asyncio.sleep(1)" in result.diff()
    assert path.read_bytes() == SLEEPY.encode()


def test_unreadable_inputs_are_skipped_with_a_reason(tmp_path: Path) -> None:
    """A directory, a binary file and a file in a bad encoding: every site skipped, no raise."""
    cases = {
        tmp_path: "cannot be read",
        _write(tmp_path, b"\x00\x01\x02binary", "bin.py"): "NUL bytes",
        _write(tmp_path, b"x = 1\ny = 2\nz = '\xff\xfe'\n", "bad.py"): "not valid utf-8",
        _write(
            tmp_path, b"# coding: klingon\nx = 1\n", "cookie.py"
        ): "encoding cannot be determined",
    }
    for path, needle in cases.items():
        result = fix_file(path, [SITE, SITE])
        assert not result.written
        assert [s.line for s in result.outcome.skipped] == [6]
        assert needle in result.outcome.skipped[0].reason, result.outcome.skipped


def test_atomic_write_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    """A write that cannot be completed raises OSError and leaves the directory clean."""
    path = _write(tmp_path, b"x = 1\n")
    target_dir = tmp_path / "sub"
    target_dir.mkdir()
    (target_dir / "x.py").mkdir()  # os.replace cannot put a file over a directory
    try:
        atomic_write(target_dir / "x.py", b"y = 2\n")
    except OSError:
        pass
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("replacing a directory by a file must fail")
    assert [p.name for p in target_dir.iterdir()] == ["x.py"]
    assert path.read_bytes() == b"x = 1\n"
