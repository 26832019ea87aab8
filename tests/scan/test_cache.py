"""The facts cache: a second scan parses nothing, and chains stay right when one file changes."""

from __future__ import annotations

import os
from pathlib import Path

from hangdoctor.scan import ScanConfig, ScanOptions, scan_paths
from hangdoctor.scan.cache import CACHE_DIR_NAME

FILES = {
    "pkg/__init__.py": "",
    "pkg/helpers.py": "import time\n\n\ndef nap():\n    time.sleep(1)\n",
    "pkg/routes.py": "from .helpers import nap\n\n\nasync def route():\n    nap()\n",
}


def _scan(root: Path, **options: object):  # type: ignore[no-untyped-def]
    opts = ScanOptions(**{"jobs": 1, **options})  # type: ignore[arg-type]
    return scan_paths([root / "pkg"], opts, ScanConfig(root=root), cwd=root)


def test_second_scan_parses_nothing(write) -> None:  # type: ignore[no-untyped-def]
    """An unchanged tree comes entirely from the cache, with the same findings."""
    root = write(FILES)
    first = _scan(root)
    assert (first.stats.parsed, first.stats.cached) == (3, 0)
    second = _scan(root)
    assert (second.stats.parsed, second.stats.cached) == (0, 3)
    assert second.findings == first.findings
    assert (root / CACHE_DIR_NAME / ".gitignore").read_text().strip().endswith("*")


def test_one_changed_file_is_parsed_and_the_chain_updates(write) -> None:  # type: ignore[no-untyped-def]
    """Editing the helper re-parses only it; the route's chain follows the new code."""
    root = write(FILES)
    assert [f.code for f in _scan(root).findings] == ["HD201"]
    (root / "pkg/helpers.py").write_text("import requests\n\n\ndef nap():\n    requests.get('x')\n")
    after = _scan(root)
    assert (after.stats.parsed, after.stats.cached) == (1, 2)
    assert [(f.code, f.chain) for f in after.findings] == [
        ("HD202", ("route", "nap", "requests.get"))
    ]


def test_touched_but_unchanged_file_is_a_hit(write) -> None:  # type: ignore[no-untyped-def]
    """A new mtime with the same bytes is found by content hash: nothing parsed."""
    root = write(FILES)
    _scan(root)
    path = root / "pkg/routes.py"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert _scan(root).stats.parsed == 0


def test_damaged_cache_is_rebuilt(write) -> None:  # type: ignore[no-untyped-def]
    """A cache file that is not JSON is ignored and rewritten."""
    root = write(FILES)
    _scan(root)
    (cache_file,) = (root / CACHE_DIR_NAME).glob("facts-*.json")
    cache_file.write_text("{not json")
    for results in (root / CACHE_DIR_NAME).glob("results-*.json"):
        results.write_text("[1, 2")  # damaged too: the facts must be rebuilt
    again = _scan(root)
    assert again.stats.parsed == 3 and [f.code for f in again.findings] == ["HD201"]
    assert _scan(root).stats.parsed == 0


def test_extra_blocking_calls_change_the_cache_key(write) -> None:  # type: ignore[no-untyped-def]
    """Different blocking-calls settings never reuse each other's facts."""
    root = write({**FILES, "pkg/other.py": "import mylib\n\n\nasync def f():\n    mylib.fetch()\n"})
    assert [f.file for f in _scan(root).findings] == ["pkg/routes.py"]
    config = ScanConfig(root=root, blocking_calls=(("mylib.fetch", "HD202"),))
    result = scan_paths([root / "pkg"], ScanOptions(jobs=1), config, cwd=root)
    assert result.stats.parsed == 4
    assert [f.file for f in result.findings] == ["pkg/other.py", "pkg/routes.py"]


def test_no_cache_writes_nothing(write) -> None:  # type: ignore[no-untyped-def]
    """--no-cache neither reads nor creates the cache directory."""
    root = write(FILES)
    result = _scan(root, use_cache=False)
    assert result.stats.parsed == 3 and result.stats.cache_file is None
    assert not (root / CACHE_DIR_NAME).exists()


def test_parallel_parsing_matches_serial(write) -> None:  # type: ignore[no-untyped-def]
    """Worker processes give the same findings as parsing in this process."""
    files = dict(FILES)
    for i in range(40):
        files[f"pkg/mod{i}.py"] = f"from .helpers import nap\n\n\nasync def r{i}():\n    nap()\n"
    root = write(files)
    serial = _scan(root, use_cache=False)
    parallel = _scan(root, use_cache=False, jobs=2)
    assert parallel.stats.jobs == 2 and serial.stats.jobs == 1
    assert parallel.findings == serial.findings and len(parallel.findings) == 41


def test_unchanged_tree_reuses_the_whole_result(write) -> None:  # type: ignore[no-untyped-def]
    """Nothing changed: findings and chains come back without reading any facts."""
    root = write(FILES)
    first = _scan(root)
    (facts,) = (root / CACHE_DIR_NAME).glob("facts-*.json")
    facts.write_text("{not json")  # would force re-parsing if the facts were read
    second = _scan(root)
    assert (second.stats.parsed, second.stats.cached) == (0, 3)
    assert second.findings == first.findings
    assert [second.chain_of(f) for f in second.findings] == [
        first.chain_of(f) for f in first.findings
    ]
    assert second.chain_of(second.findings[0])  # the route -> nap -> time.sleep hops


def test_other_settings_do_not_reuse_a_result(write) -> None:  # type: ignore[no-untyped-def]
    """An ignored code, or a touched file, is not answered from the last result."""
    root = write(FILES)
    assert [f.code for f in _scan(root).findings] == ["HD201"]
    assert _scan(root, ignore=("HD201",)).findings == ()
    assert [f.code for f in _scan(root).findings] == ["HD201"]
    (root / "pkg/routes.py").write_text("async def route():\n    pass\n")
    assert _scan(root).findings == ()
