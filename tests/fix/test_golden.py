"""Golden cases: every fix applied to before.py gives exactly after.py and fix.diff."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import runpy
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest
from tests.fix.golden import REGEN, diff_of, load, names, regenerate

CASES = names()
ROOT = Path(__file__).resolve().parents[2]


def test_there_is_a_golden_case_per_fix() -> None:
    """The golden set covers every fix and the skip cases."""
    assert len(CASES) >= 12
    for needed in ("hd101_sse_generator", "hd101_py38", "hd201_aliases", "skip_cases"):
        assert needed in CASES


@pytest.mark.parametrize("name", CASES)
def test_fix_matches_golden_after_and_diff(name: str) -> None:
    """Applying the case's sites to before.py gives the committed after.py and fix.diff."""
    case = load(name)
    if REGEN:
        regenerate(case)
    outcome = case.run()
    after = (case.dir / "after.py").read_text(encoding="utf-8")
    assert outcome.text == after
    assert diff_of(case, outcome.text) == (case.dir / "fix.diff").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_applied_and_skipped_are_reported(name: str) -> None:
    """Each case applies the expected codes and skips the others with the expected reason."""
    case = load(name)
    outcome = case.run()
    assert [a.code for a in outcome.applied] == case.spec["applied"]
    got = {(s.code, s.line): s.reason for s in outcome.skipped}
    assert len(got) == len(case.spec["skipped"]), got
    for code, line, needle in case.spec["skipped"]:
        assert needle in got[(code, line)], got[(code, line)]
    for reason in got.values():
        assert (reason[0].isupper() or reason[0] == "`") and reason.endswith("."), reason
    if "description" in case.spec:
        assert case.spec["description"] in outcome.applied[0].description
    unsafe = {a.safe for a in outcome.applied}
    assert unsafe <= ({False} if case.unsafe else {True})


@pytest.mark.parametrize("name", CASES)
def test_fix_is_idempotent(name: str) -> None:
    """Running the fix again on its own output (same sites) changes nothing."""
    case = load(name)
    once = case.run()
    twice = case.run(once.text)
    assert twice.text == once.text
    assert twice.applied == ()


@pytest.mark.parametrize("name", CASES)
def test_fixed_code_reparses(name: str) -> None:
    """The fixed text parses with both libcst and ast, and compiles."""
    text = load(name).run().text
    cst.parse_module(text)
    compile(ast.parse(text), name, "exec")


RUFF = Path(sys.executable).with_name("ruff")
LINTS = {
    # ruff's default rules, and E402 (an added `import asyncio` below other code)
    "ruff defaults": ["--isolated", "--select", "E4,E7,E9,F,E402"],
    # the project's own rules, but not those that judge the layout the user chose rather
    # than the fix: line length (a rewrite is not reflowed), import order, a coding line
    "project rules": ["--extend-ignore", "E501,I001,UP009"],
}


@pytest.mark.parametrize("lint", sorted(LINTS))
@pytest.mark.parametrize("name", CASES)
def test_fixed_code_is_lint_clean(name: str, lint: str) -> None:
    """Every golden after.py passes the real `ruff check`: no import the fix made unused
    is left (F401), none is added twice (F811) or below code (E402). tests/data is
    excluded only from the project's own lint run; a file named on the command line is
    checked."""
    after = load(name).dir / "after.py"
    proc = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--output-format", "concise", *LINTS[lint], str(after)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _missing_modules(text: str) -> list[str]:
    """Top-level modules `text` imports that are not installed here."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


@pytest.mark.parametrize("name", CASES)
def test_fixed_module_still_imports(name: str) -> None:
    """Every golden after.py runs as a module (in a fresh interpreter): no name it needs at
    import time was taken away with an import."""
    after = load(name).dir / "after.py"
    missing = _missing_modules(after.read_text(encoding="utf-8"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, not installed here")
    proc = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])", str(after)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


RUNS = {
    "hd101_simple_with": ("handler", ("a page long enough",)),
    "hd102_variable_and_chained": ("report", ("summary",)),
    "hd201_existing_asyncio": ("tick", (3,)),
}


def _call(path: Path, func: str, args: tuple[object, ...]) -> tuple[object, int]:
    """`func(*args)` of the module at `path` run on a loop: (its result, heartbeats seen).

    A heartbeat task ticks every 10 ms meanwhile: a loop the code blocks sees none.
    """
    namespace = runpy.run_path(str(path))

    async def main() -> tuple[object, int]:
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.01)
                beats += 1

        task = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        try:
            return await namespace[func](*args), beats
        finally:
            task.cancel()

    return asyncio.run(main())


@pytest.mark.parametrize("name", sorted(RUNS))
def test_fixed_code_still_runs_and_gives_the_same_result(name: str) -> None:
    """The golden cases that can run here give the same result before and after the fix;
    the HD201 case no longer stops the loop while it sleeps."""
    case = load(name)
    func, args = RUNS[name]
    before, _ = _call(case.dir / "before.py", func, args)
    after, beats = _call(case.dir / "after.py", func, args)
    assert after == before
    if name.startswith("hd201_"):
        assert beats >= 10  # 0.3 s of sleeps: the heartbeat kept ticking


def _bound_names(text: str) -> set[str]:
    """Every name the module binds anywhere: assignments, defs, parameters, imports, `as`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
    return found


@pytest.mark.parametrize("name", CASES)
def test_the_fix_invents_no_names(name: str) -> None:
    """A fix binds no name of its own (no `fut_2`, no helper variable): every name bound in
    after.py was bound in before.py, but for the module an added import brings in. Should a
    fix ever need a new name, this test is where its readability gets decided."""
    case = load(name)
    after = (case.dir / "after.py").read_text(encoding="utf-8")
    assert _bound_names(after) - _bound_names(case.before) <= {"asyncio", "functools"}
