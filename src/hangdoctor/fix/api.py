"""`fix_source`: apply the fixes for the reported sites of one module's text."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import libcst as cst

from hangdoctor.fix import endings
from hangdoctor.fix.codes import FIXABLE, UNSAFE_CODES
from hangdoctor.fix.context import SourceIndex, indexed
from hangdoctor.fix.edit import Plan, apply_plans
from hangdoctor.fix.executor_block import find_executor_with, plan_executor_with
from hangdoctor.fix.futures import find_result_call, plan_result
from hangdoctor.fix.model import AppliedFix, FixOutcome, FixSite, SkippedFix
from hangdoctor.fix.shutdown import find_shutdown, plan_shutdown
from hangdoctor.fix.sleep import find_sleep, plan_sleep
from hangdoctor.fix.to_thread import find_blocking_call, plan_to_thread

__all__ = ["FIXABLE", "MAX_FIX_CHARS", "fix_source", "fix_source_runs"]

# libcst reads about 20 KB a second with the fixer's analyses: a bigger file (generated code,
# mostly) would stall `scan` and its marks for minutes, so the fixer leaves it alone
MAX_FIX_CHARS = 256 * 1024


_UNSAFE_HINT = "it is an unsafe fix: pass unsafe=True (`--unsafe-fixes`) to apply it"


def _plan(index: SourceIndex, site: FixSite, unsafe: bool, target: tuple[int, int]) -> Plan | str:
    code = site.code.upper()
    if code == "HD101":
        block = find_executor_with(index, site)
        if block is not None:
            return plan_executor_with(index, site, block, target)
        call = find_shutdown(index, site)
        if call is not None:
            return plan_shutdown(index, site, call, target)
        return (
            f"There is no `with` executor block or `.shutdown()` call at line {site.line}, "
            f"column {site.col}."
        )
    if code == "HD201":
        call = find_sleep(index, site)
        if call is not None:
            return plan_sleep(index, site, call)
        if unsafe:
            return _unsafe(index, site, target)
        return (
            f"The call at line {site.line} is not `time.sleep` itself (it blocks further "
            f"down); {_UNSAFE_HINT} and run it with asyncio.to_thread."
        )
    if code == "HD102":
        call = find_result_call(index, site)
        if call is not None:
            return plan_result(index, site, call)
        return (
            f"There is no `<future>.result()` call at line {site.line}; "
            "concurrent.futures.wait() and as_completed() have no automatic fix."
        )
    if code in UNSAFE_CODES:
        if not unsafe:
            return f"{code} has only an unsafe fix (asyncio.to_thread): {_UNSAFE_HINT}."
        return _unsafe(index, site, target)
    return f"{code} has no automatic fix."


def _unsafe(index: SourceIndex, site: FixSite, target: tuple[int, int]) -> Plan | str:
    call = find_blocking_call(index, site)
    if isinstance(call, str):
        return call
    return plan_to_thread(index, site, call, target)


def _compiles(code: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours to report
        try:
            compile(code, "<hangdoctor-fix>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def _parses(code: str) -> bool:
    try:
        cst.parse_module(code)
    except (cst.ParserSyntaxError, RecursionError, ValueError):
        return False
    return True


def _valid(code: str, strict: bool) -> bool:
    """Whether fixed code is as valid as the input was: it compiles when the input did
    (`strict`: Python itself is the judge, and a tenth of the cost of libcst's parse),
    else libcst still parses it (the input may be newer Python than this interpreter)."""
    return _compiles(code) if strict else _parses(code)


def _select(
    index: SourceIndex, plans: list[Plan], strict: bool
) -> tuple[str, list[Plan], list[Plan]]:
    """(new code, accepted plans, plans rejected because the result would not re-parse)."""
    module = index.module
    code = apply_plans(module, plans, index.ancestors)
    if _valid(code, strict):
        return code, plans, []
    accepted: list[Plan] = []
    rejected: list[Plan] = []
    code = module.code
    for plan in plans:  # find the culprits one by one; rare, so the cost does not matter
        trial = apply_plans(module, [*accepted, plan], index.ancestors)
        if _valid(trial, strict):
            accepted.append(plan)
            code = trial
        else:
            rejected.append(plan)
    return code, accepted, rejected


def _skip(site: FixSite, reason: str) -> SkippedFix:
    return SkippedFix(site.code, site.line, reason)


def fix_source(
    text: str,
    sites: Sequence[FixSite],
    *,
    unsafe: bool = False,
    target_python: tuple[int, int] = (3, 10),
) -> FixOutcome:
    """Apply every fix that can be made at `sites` of the module `text`.

    Sites with no fix (or with only an unsafe one while `unsafe` is False) come
    back as `SkippedFix` with the reason. Comments, formatting and line endings
    of everything not changed are kept; the result always re-parses (a fix
    that would break it is skipped); a second run on the result changes nothing.
    Never raises on any input text.
    """
    return fix_source_runs(text, [(sites, unsafe)], target_python=target_python)[0]


def fix_source_runs(
    text: str,
    runs: Sequence[tuple[Sequence[FixSite], bool]],
    *,
    target_python: tuple[int, int] = (3, 10),
) -> list[FixOutcome]:
    """`fix_source` for each (sites, unsafe) of `runs` on the same text, parsed and analysed
    once: the scan's marks ask what `--fix` and `--fix --unsafe-fixes` would both do."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    norm = endings.normalize(body)
    uniques = [list(dict.fromkeys(sites)) for sites, _ in runs]
    if len(norm) > MAX_FIX_CHARS:
        reason = (
            f"The file has {len(norm) // 1024} KB of text, more than the fixer reads "
            f"({MAX_FIX_CHARS // 1024} KB), so nothing in it is fixed; fix it by hand."
        )
        return [FixOutcome(text, (), tuple(_skip(s, reason) for s in u)) for u in uniques]
    try:
        module = cst.parse_module(norm)
    except (cst.ParserSyntaxError, RecursionError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"The file does not parse, so nothing in it is fixed ({first})."
        return [FixOutcome(text, (), tuple(_skip(s, reason) for s in u)) for u in uniques]
    strict: list[bool] = []  # whether the input compiles, worked out once when first needed
    with indexed(module, norm) as index:
        return [
            _run(index, text, norm, strict, unique, unsafe, target_python)
            for unique, (_, unsafe) in zip(uniques, runs, strict=True)
        ]


def _run(
    index: SourceIndex,
    text: str,
    norm: str,
    strict: list[bool],
    unique: list[FixSite],
    unsafe: bool,
    target_python: tuple[int, int],
) -> FixOutcome:
    skipped: list[SkippedFix] = []
    plans: list[Plan] = []
    claimed: set[cst.CSTNode] = set()
    for site in unique:
        try:
            plan = _plan(index, site, unsafe, target_python)
        except RecursionError:
            plan = "The code at this site is nested too deeply for the fixer."
        if isinstance(plan, str):
            skipped.append(_skip(site, plan))
        elif claimed & set(plan.edits):
            skipped.append(_skip(site, "Another reported site already fixes this code."))
        else:
            claimed.update(plan.edits)
            plans.append(plan)
    if not plans:
        return FixOutcome(text, (), tuple(skipped))
    if not strict:
        strict.append(_compiles(norm))
    new_code, accepted, rejected = _select(index, plans, strict[0])
    for plan in rejected:
        skipped.append(
            _skip(plan.site, "The fixed code would not parse, so this fix was not made.")
        )
    if not accepted or new_code == norm:
        return FixOutcome(text, (), tuple(skipped))
    applied = tuple(
        AppliedFix(p.site.code, p.line, p.description, p.safe, p.site)
        for p in sorted(accepted, key=lambda p: p.line)
    )
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    return FixOutcome(bom + endings.restore(text[len(bom) :], new_code), applied, tuple(skipped))
