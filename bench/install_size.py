"""Benchmark: how much each way of installing hangdoctor puts on disk.

Run: .venv/bin/python bench/install_size.py [--keep]

Builds both wheels from this checkout (hangdoctor-runtime and hangdoctor), installs each
variant below with pip into its own empty `--target` directory (dependencies from PyPI,
the runtime wheel found beside the other), and prints, side by side: the size on disk
(files as pip leaves them, bytecode included), the number of distributions, and the ratio
to the runtime alone. docs/install.md quotes these figures.

  hangdoctor-runtime               the watchdog, middleware, executors, pytest plugin
  hangdoctor-runtime[prometheus]   + prometheus-client
  hangdoctor-runtime[otel]         + the OpenTelemetry API and SDK
  hangdoctor                       the whole tool: the CLI with py-spy, rich, click, libcst...
  hangdoctor[demo]                 + FastAPI, uvicorn, httpx for `hangdoctor demo`

Every pip call has a deadline; everything lives in a temporary directory removed at the
end (unless --keep).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "packaging" / "hangdoctor-runtime"
VARIANTS = (
    "hangdoctor-runtime",
    "hangdoctor-runtime[prometheus]",
    "hangdoctor-runtime[otel]",
    "hangdoctor",
    "hangdoctor[demo]",
)
PIP_TIMEOUT_S = 600.0


def _pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode != 0:
        raise SystemExit(f"install_size: pip {args[0]} failed:\n{done.stdout}{done.stderr}")


def _size(folder: Path) -> tuple[int, int]:
    """Bytes of every file under `folder`, and the number of distributions there."""
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    dists = len(list(folder.glob("*.dist-info")))
    return total, dists


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hangdoctor-install-size-"))
    try:
        wheels = work / "wheels"
        _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(RUNTIME), str(ROOT))
        rows: list[tuple[str, int, int]] = []
        for variant in VARIANTS:
            target = work / variant.replace("[", "-").rstrip("]")
            _pip("install", "--target", str(target), "--find-links", str(wheels), variant)
            shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: a few bytes
            rows.append((variant, *_size(target)))
        base = rows[0][1]
        print(f"{'install':34} {'size':>9} {'dists':>6} {'x runtime':>10}")
        for variant, size, dists in rows:
            print(f"{variant:34} {size / 1e6:>7.1f} MB {dists:>6} {size / base:>9.1f}x")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
