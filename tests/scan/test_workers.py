"""How the scan spreads files over worker processes: which start method, which order."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig, ScanOptions, scan_paths
from hangdoctor.scan.engine import _batches, _parse_batch


def _start_method(code: str) -> str:
    script = textwrap.dedent(code) + "\nfrom hangdoctor.scan.workers import pool_start_method\n"
    script += "print(pool_start_method())\n"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="fork is used on Linux only")
def test_workers_are_forked_only_from_a_single_thread() -> None:
    """A lone thread forks (the workers start with everything imported); with a second
    thread alive, whose locks a child would inherit held, a forkserver starts them."""
    assert _start_method("") == "fork"
    busy = """
        import threading
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    """
    assert _start_method(busy) == "forkserver"


def test_batches_hand_out_the_biggest_files_first() -> None:
    """Every file once; the big ones alone in the first batches, the small ones grouped
    at the end, where they even out the workers' finishing times."""
    sizes = [10] * 200 + [5000, 3000]
    batches = _batches(sizes, workers=2)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert batches[0] == [200] and batches[1] == [201]
    assert max(len(b) for b in batches) > 1 and len(batches) < len(sizes) / 2


def test_parallel_scan_of_files_of_very_different_sizes(tmp_path: Path) -> None:
    """Handed out out of order, the facts still come back to their own files."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("import time\n\n\ndef nap():\n    time.sleep(1)\n")
    filler = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(3000))
    for i in range(30):
        body = filler if i % 7 == 0 else ""
        (pkg / f"mod{i}.py").write_text(
            f"from .helpers import nap\n\n{body}\nasync def route{i}():\n    nap()\n"
        )
    config = ScanConfig(root=tmp_path)
    serial = scan_paths([pkg], ScanOptions(use_cache=False, jobs=1), config, cwd=tmp_path)
    parallel = scan_paths([pkg], ScanOptions(use_cache=False, jobs=2), config, cwd=tmp_path)
    assert parallel.stats.jobs == 2
    assert parallel.findings == serial.findings and len(serial.findings) == 30
    assert parallel.stats.lines == serial.stats.lines


def test_a_batch_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    """Workers switch the collector off per file; it is on again after each, even when a
    file cannot be read."""
    good = tmp_path / "good.py"
    good.write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    missing = tmp_path / "missing.py"
    files = [(str(good), "good.py", "good", False), (str(missing), "missing.py", "missing", False)]
    assert gc.isenabled()
    results = _parse_batch(((), (), 1 << 20, True, files))
    assert gc.isenabled()
    assert [type(r).__name__ for r in results] == ["FileFacts", "FileProblem"]


def test_a_cache_dir_that_does_not_exist_yet_is_created(tmp_path: Path) -> None:
    """`ScanOptions.cache_dir` pointing at a new folder: the first scan fills it and the
    second parses nothing (the cache was once silently never written there)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "app.py").write_text("import time\n\n\nasync def f():\n    time.sleep(1)\n")
    cache = tmp_path / "caches" / "hangdoctor"
    options = ScanOptions(jobs=1, cache_dir=cache)
    config = ScanConfig(root=tmp_path)
    first = scan_paths([pkg], options, config, cwd=tmp_path)
    assert first.stats.parsed == 1 and list(cache.glob("facts-*.json"))
    second = scan_paths([pkg], options, config, cwd=tmp_path)
    assert second.stats.parsed == 0 and second.findings == first.findings
