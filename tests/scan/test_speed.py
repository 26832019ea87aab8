"""What the cold scan does to be fast must not change what it finds."""

from __future__ import annotations

from hangdoctor.fix.marks import SAFE, _dry_run, _dry_runs, _DryRun, fix_marks, fix_sites
from tests.scan.conftest import run_scan


def test_a_name_looked_up_too_deep_once_is_still_found_up_close(write) -> None:  # type: ignore[no-untyped-def]
    """The graph remembers each name it resolved, with the depth it was met at: a name
    first met at the end of a re-export chain too long to follow (`a_deep` calls r0.helper,
    fourteen hops away) must still resolve when a later call names it directly (r13.helper
    is one hop from the helper that sleeps)."""
    files = {f"r{i}.py": f"from r{i + 1} import helper\n" for i in range(14)}
    files["r14.py"] = "import time\n\n\ndef helper():\n    time.sleep(1)\n"
    files["a_deep.py"] = "import r0\n\n\nasync def far():\n    r0.helper()\n"
    files["b_direct.py"] = "import r13\n\n\nasync def near():\n    r13.helper()\n"
    root = write(files)
    result = run_scan([root], root)
    # the long chain ends unresolved (the depth limit), so it is the first to remember r13
    assert [(f.file, f.line, f.code) for f in result.findings] == [("b_direct.py", 5, "HD201")]
    assert result.findings[0].chain == ("near", "helper", "time.sleep")


def _blocking(calls: int) -> str:
    return "import time\n\n\nasync def route():\n" + "    time.sleep(1)\n" * calls


def test_marks_of_several_files_are_each_files_own(write) -> None:  # type: ignore[no-untyped-def]
    """The fixer's dry runs of several files run in worker processes: each file gets its
    own answer, in order, the same as one file at a time in this process."""
    root = write({f"m{i}.py": _blocking(i + 1) for i in range(3)})  # a different answer each
    result = run_scan([root], root)
    assert len(result.findings) == 6
    safe = fix_sites(result, unsafe=False)
    every = fix_sites(result, unsafe=True)
    jobs: list[_DryRun] = [
        (result.files[d].path, safe.get(d, []), sites, (3, 10)) for d, sites in every.items()
    ]
    assert len(jobs) == 3
    one_by_one = [_dry_run(job) for job in jobs]
    assert _dry_runs(jobs) == one_by_one
    assert [[s.line for s in run] for run, _ in one_by_one] == [[5], [5, 6], [5, 6, 7]]
    marks = fix_marks(result, target=(3, 10))
    assert marks == {(f.file, f.line, f.col or 0, f.code): SAFE for f in result.findings}


TRICKY = """\
import contextlib
import pkg.shared as shared
from pkg.app import app, endpoint, init, life
from starlette.applications import Starlette
from starlette.routing import Route


def make():
    built = Starlette(lifespan=life, routes=[Route("/", endpoint)])
    built.router.on_startup.append(init)
    return built


def bound():
    with contextlib.nullcontext() as (shared.value, other):
        return [endpoint, other]


def keyed(xs):
    return sorted(xs, key=lambda x: [shared.handler, x])


def outer():
    @app.get("/")
    async def inner():
        return {"a": shared.handler}

    class Local:
        hooks = [init]

    return inner, Local


def plain():
    value = {"x": endpoint}
    return [shared.handler, value], (init,)
"""


def test_phases_from_the_scans_walk_are_those_of_the_full_walk() -> None:
    """`file_phases` takes what function bodies hand on from the scan's own walk where it
    can; the facts must be those of walking every body again, for every file of the
    scan's test data and for bodies that register, nest scopes, or bind `with` targets."""
    import ast

    from hangdoctor.scan.knowledge import build_knowledge
    from hangdoctor.scan.startup import file_phases
    from hangdoctor.scan.visit import _FileAnalyzer, file_facts
    from tests.scan.conftest import DATA

    kb = build_knowledge({}, {})
    sources = [TRICKY, *(p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.py")))]
    fast_bodies = 0
    for text in sources:
        tree = ast.parse(text)
        analyzer = _FileAnalyzer(tree, text.splitlines(), "pkg.mod", False, kb)
        root = analyzer.build()
        facts = analyzer.facts(root)
        fast_bodies += sum(1 for v in analyzer.handed.values() if v is not None)
        assert facts.phases == file_phases(tree, "pkg.mod", analyzer._phase_dotted(root))
    tree = ast.parse(TRICKY)
    phases = file_facts(tree, TRICKY.splitlines(), "pkg.mod", False, kb).phases
    tricky = {p.target for p in phases if p.role == "ref"}
    assert "pkg.shared.value" not in tricky  # a `with` target is not handed on
    assert {"pkg.app.endpoint", "pkg.shared.handler", "pkg.app.init"} <= tricky
    assert fast_bodies > 10  # the shortcut is taken, not only the full walk


def test_the_garbage_collector_is_left_as_it_was(write) -> None:  # type: ignore[no-untyped-def]
    """The scan turns the cyclic collector off while it holds its facts, and back on
    after, only if it was on: a caller that turned it off keeps it off."""
    import gc

    root = write({"a.py": "import time\n\n\nasync def f():\n    time.sleep(1)\n"})
    was = gc.isenabled()
    try:
        gc.enable()
        assert len(run_scan([root], root).findings) == 1
        assert gc.isenabled()
        gc.disable()
        assert len(run_scan([root], root).findings) == 1
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


def test_marking_imports_libcst_only_to_run_the_fixer() -> None:
    """libcst costs a tenth of a second to import: a scan whose marks all come from the
    cache, or that has nothing to fix, never imports it."""
    import subprocess
    import sys

    code = "import sys, hangdoctor.fix.marks, hangdoctor.scan\nprint('libcst' in sys.modules)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
