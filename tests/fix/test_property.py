"""Property tests: on any valid Python and any sites, fix_source never raises and stays valid."""

from __future__ import annotations

import ast
import re
import warnings

import hypothesmith
import libcst as cst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hangdoctor.fix import FIXABLE, FixSite, fix_source

CODES = [*FIXABLE, "HD301", "HD900"]
SAFE = [code for code, safe in FIXABLE.items() if safe]
_WORD = re.compile(r"\b\w")

IMPORTS = [
    "import asyncio",
    "import asyncio as aio",
    "import time",
    "import time as t",
    "from time import sleep",
    "from time import sleep as nap",
    "from concurrent.futures import ThreadPoolExecutor",
    "from concurrent.futures import ProcessPoolExecutor as PPE",
    "import concurrent.futures",
    "import requests",
    "import functools",
]

STATEMENTS = [
    "time.sleep(0.1)",
    "t.sleep(1)  # comment",
    "sleep(2)",
    "nap(3)",
    "x = time.sleep(1) or 2",
    "(time.sleep(\n    0))",
    "if x: time.sleep(1)",
    "y = 1; time.sleep(y)",
    "fut = pool.submit(work, 1)",
    "x = fut.result()",
    "x = pool.submit(work).result(timeout=2)",
    "x = pool.submit(work).result(1).strip()",
    "r = requests.get(url, timeout=5)",
    "data = requests.Session().get(url).json()",
    "ex.shutdown()",
    "ex.shutdown(wait=True)",
    "asyncio = None",
    "pending = fut = 0",
    "f = lambda: time.sleep(1)",
    "xs = [time.sleep(0) for _ in range(2)]",
    "g = (time.sleep(0) for _ in range(2))",
    "return x",
    "yield x",
    "await asyncio.sleep(0)",
    "pass",
]

WITH_HEADERS = [
    "with ThreadPoolExecutor(max_workers=2) as ex:",
    "with PPE() as ex:",
    "with concurrent.futures.ThreadPoolExecutor() as pool:",
    "with open(p) as fh, ThreadPoolExecutor() as ex:",
    "with ThreadPoolExecutor():",
    "with ThreadPoolExecutor() as ex, ThreadPoolExecutor() as ex2:",
]

IN_WITH = [
    "item = await loop.run_in_executor(ex, work)",
    "await loop.run_in_executor(ex, work, 1)",
    "return await loop.run_in_executor(pool, work)",
    "x = await asyncio.gather(loop.run_in_executor(ex, work))",
    "ex.submit(work)",
    "time.sleep(1)",
]


@st.composite
def _block(draw: st.DrawFn, depth: int) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.integers(0, 10 if depth < 2 else 6))
        if kind <= 5:
            lines.extend(draw(st.sampled_from(STATEMENTS)).splitlines())
        elif kind == 6:
            lines.append("# " + draw(st.text("abc xyz", max_size=10)))
        elif kind in (7, 8):
            lines.append(draw(st.sampled_from(WITH_HEADERS)))
            body = draw(st.lists(st.sampled_from(IN_WITH), min_size=1, max_size=3))
            lines.extend("    " + b for b in body)
        elif kind == 9:
            lines.append(f"def inner_{depth}():")
            lines.extend("    " + b for b in draw(_block(depth + 1)))
        else:
            lines.append("while x:")
            lines.extend("    " + b for b in draw(_block(depth + 1)))
    if all(line.startswith("#") for line in lines):
        lines.append("pass")  # a block of comments alone is not valid Python
    return lines


@st.composite
def async_modules(draw: st.DrawFn) -> str:
    """Modules mixing imports, async and sync functions with the fixable patterns."""
    parts = draw(st.lists(st.sampled_from(IMPORTS), max_size=6, unique=True))
    if draw(st.booleans()):
        parts.insert(0, '"""Module doc."""\n')
    for n in range(draw(st.integers(1, 3))):
        head = draw(st.sampled_from(["async def", "def"]))
        parts.append(f"\n\n{head} fn_{n}(x, loop, pool, url, p, work):")
        parts.extend("    " + line for line in draw(_block(0)))
    return "\n".join(parts) + "\n"


def _compiles(text: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(text, "<test>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


def _every_word(text: str, codes: list[str]) -> list[FixSite]:
    return [
        FixSite(code, n, m.start())
        for n, line in enumerate(text.splitlines(), start=1)
        for m in _WORD.finditer(line)
        for code in codes
    ]


_SLOW = settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SLOW
@given(async_modules(), st.booleans(), st.sampled_from([(3, 8), (3, 10)]))
def test_safe_fixes_everywhere_keep_code_valid_and_are_idempotent(
    text: str, crlf: bool, target: tuple[int, int]
) -> None:
    """Safe fixes at every word of generated async code: valid output; a second pass is a no-op."""
    if crlf:
        text = text.replace("\n", "\r\n")
    compiled = _compiles(text)
    once = fix_source(text, _every_word(text, SAFE), target_python=target)
    cst.parse_module(once.text)
    ast.parse(once.text)
    if compiled:
        assert _compiles(once.text)
    if crlf:
        assert "\n" not in once.text.replace("\r\n", "")
    twice = fix_source(once.text, _every_word(once.text, SAFE), target_python=target)
    assert twice.text == once.text
    assert twice.applied == ()


@_SLOW
@given(async_modules(), st.data())
def test_any_sites_with_unsafe_fixes_keep_code_valid(text: str, data: st.DataObject) -> None:
    """Random sites and codes, unsafe fixes on: never raises, the output always parses."""
    n_lines = len(text.splitlines())
    sites = data.draw(
        st.lists(
            st.builds(
                FixSite, st.sampled_from(CODES), st.integers(-1, n_lines + 2), st.integers(-1, 60)
            ),
            max_size=30,
        )
    )
    out = fix_source(text, sites, unsafe=True)
    cst.parse_module(out.text)
    if _compiles(text):
        assert _compiles(out.text)
    assert len(out.applied) + len(out.skipped) == len(set(sites))


@settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(hypothesmith.from_node(), hypothesmith.from_grammar()), st.data())
def test_generated_python_never_breaks_the_fixer(text: str, data: st.DataObject) -> None:
    """Arbitrary valid Python from hypothesmith, arbitrary sites: no exception, still parses."""
    n_lines = max(len(text.splitlines()), 1)
    sites = data.draw(
        st.lists(
            st.builds(FixSite, st.sampled_from(CODES), st.integers(1, n_lines), st.integers(0, 40)),
            max_size=20,
        )
    )
    out = fix_source(text, sites, unsafe=data.draw(st.booleans()))
    try:
        cst.parse_module(text)
    except cst.ParserSyntaxError:
        # valid for CPython, beyond libcst's parser (`\\` + CRLF at the end): left as it was
        assert out.text == text and out.applied == ()
        return
    cst.parse_module(out.text)
    if _compiles(text):
        assert _compiles(out.text)
