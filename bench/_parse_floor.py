"""The parse floor of `bench/scan.py`: read and `ast.parse` every file, nothing else.

Run: python bench/_parse_floor.py CORPUS JOBS START_METHOD

It is what any AST checker must pay at least, measured the way the scan runs:
a fresh interpreter, the same number of worker processes started the same way
(START_METHOD, as the scan's engine picks it), the same files handed out
largest first in the same chunks. The cold scan's time divided by this one's is
the overhead of everything the scan does beyond parsing. Only the standard
library is imported, so the floor pays no start-up the scan would not.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

SKIPPED = frozenset({"__pycache__", ".hangdoctor_cache", ".git"})


def _files(root: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out.append((os.path.getsize(path), path))
    return out


def _parse(path: str) -> int:
    """Lines of one file once parsed (0 when it does not parse); the tree is dropped."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        ast.parse(raw)
    except (SyntaxError, ValueError):
        return 0
    return raw.count(b"\n")


def main() -> int:
    root, jobs, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = _files(root)
    # the scan's scheduling (engine._run_jobs): biggest files first, small chunks
    files.sort(key=lambda f: -f[0])
    paths = [p for _, p in files]
    if jobs <= 1:
        lines = sum(map(_parse, paths))
    else:
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload([__name__])
        chunk = max(1, len(paths) // (jobs * 16))
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            lines = sum(pool.map(_parse, paths, chunksize=chunk))
    print(f"{len(paths)} files, {lines} lines parsed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
