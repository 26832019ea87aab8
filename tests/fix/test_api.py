"""fix_source: site matching, safety checks, names, imports and the re-parse guarantee."""

from __future__ import annotations

import libcst as cst

from hangdoctor.fix import FIXABLE, FixSite, fix_source
from hangdoctor.fix.api import _select
from hangdoctor.fix.context import indexed
from hangdoctor.fix.edit import Plan

SLEEP = "import asyncio\nimport time\n\n\nasync def f():\n    time.sleep(1)\n"


def test_fixable_lists_safe_and_unsafe_codes() -> None:
    """HD101, HD102 and HD201 are safe; the HD2xx blocking calls and HD501 are unsafe only."""
    assert {c for c, safe in FIXABLE.items() if safe} == {"HD101", "HD102", "HD201"}
    assert {c for c, safe in FIXABLE.items() if not safe} == {
        "HD202",
        "HD203",
        "HD204",
        "HD205",
        "HD206",
        "HD207",
        "HD501",
    }


def test_column_in_utf8_bytes_or_code_points_both_match() -> None:
    """ast's byte column and libcst's code-point column find the same call after non-ASCII."""
    src = "import asyncio\nimport time\n\n\nasync def f():\n    é = 1; time.sleep(é)\n"
    line = src.splitlines()[5]
    chars = line.index("time.sleep")
    nbytes = len(line[:chars].encode())
    assert nbytes != chars
    for col in (chars, nbytes):
        out = fix_source(src, [FixSite("HD201", 6, col)])
        assert "é = 1; await asyncio.sleep(é)" in out.text, out.skipped


def test_a_wrong_column_still_finds_the_only_candidate_on_the_line() -> None:
    """An off column is tolerated when the line holds exactly one fixable call."""
    out = fix_source(SLEEP, [FixSite("HD201", 6, 0)])
    assert "await asyncio.sleep(1)" in out.text


def test_duplicate_sites_fix_once() -> None:
    """The same site twice is one fix."""
    out = fix_source(SLEEP, [FixSite("HD201", 6, 4)] * 2)
    assert len(out.applied) == 1 and out.skipped == ()
    assert out.text.count("await asyncio.sleep(1)") == 1


def test_invalid_python_skips_every_site_and_never_raises() -> None:
    """A file that does not parse comes back unchanged, each site skipped with why."""
    out = fix_source("async def f(:\n    time.sleep(1)\n", [FixSite("HD201", 2, 4)])
    assert out.text.startswith("async def f(:")
    assert out.applied == ()
    assert "does not parse" in out.skipped[0].reason


def test_sites_outside_the_file_are_skipped() -> None:
    """A line past the end, line 0 and a negative column are skipped, not errors."""
    sites = [FixSite("HD201", 99, 0), FixSite("HD201", 0, 0), FixSite("HD102", 6, -3)]
    out = fix_source(SLEEP, sites)
    assert out.text == SLEEP
    assert len(out.skipped) == 3


def test_unsafe_fix_needs_the_flag() -> None:
    """A blocking call is only moved to a thread with unsafe=True."""
    src = "import requests\n\n\nasync def f():\n    return requests.get('u', timeout=1)\n"
    site = FixSite("HD202", 5, 11)
    safe_only = fix_source(src, [site])
    assert safe_only.text == src and "unsafe" in safe_only.skipped[0].reason
    out = fix_source(src, [site], unsafe=True)
    assert "return await asyncio.to_thread(requests.get, 'u', timeout=1)" in out.text
    assert out.text.startswith("import asyncio\n\nimport requests\n")
    assert out.applied[0].safe is False


def test_hd201_through_a_helper_is_moved_to_a_thread_only_when_unsafe() -> None:
    """HD201 reported at a call of a project function that sleeps: to_thread with unsafe=True."""
    src = "import asyncio\n\n\ndef load():\n    pass\n\n\nasync def f():\n    load()\n"
    site = FixSite("HD201", 9, 4)
    assert "unsafe" in fix_source(src, [site]).skipped[0].reason
    assert "    await asyncio.to_thread(load)\n" in fix_source(src, [site], unsafe=True).text


def test_asyncio_alias_is_reused_and_shadowing_is_respected() -> None:
    """`import asyncio as aio` gives `aio.sleep`; a local named asyncio blocks the fix."""
    aliased = "import asyncio as aio\nimport time\n\n\nasync def f():\n    time.sleep(1)\n"
    assert "await aio.sleep(1)" in fix_source(aliased, [FixSite("HD201", 6, 4)]).text
    shadow = "import time\n\n\nasync def f(asyncio):\n    time.sleep(1)\n"
    out = fix_source(shadow, [FixSite("HD201", 5, 4)])
    assert out.text == shadow
    assert "means something else" in out.skipped[0].reason


def test_executor_import_goes_only_with_its_last_use() -> None:
    """Two fixed blocks in one file drop the executor import; a remaining use keeps it."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\n\n"
        "async def f(loop):\n"
        "    with ThreadPoolExecutor() as ex:\n"
        "        x = await loop.run_in_executor(ex, len, 'a')\n"
        "    with ThreadPoolExecutor(2) as ex:\n"
        "        y = await loop.run_in_executor(ex, len, 'b')\n"
        "    return x + y\n"
    )
    both = fix_source(src, [FixSite("HD101", 5, 4), FixSite("HD101", 7, 4)])
    assert [a.code for a in both.applied] == ["HD101", "HD101"]
    assert both.text == (
        "async def f(loop):\n"
        "    x = await loop.run_in_executor(None, len, 'a')\n"
        "    y = await loop.run_in_executor(None, len, 'b')\n"
        "    return x + y\n"
    )
    one = fix_source(src, [FixSite("HD101", 5, 4)])
    assert one.text.startswith("from concurrent.futures import ThreadPoolExecutor\n")
    assert "with ThreadPoolExecutor(2) as ex:" in one.text


def test_fixed_block_keeps_no_executor_of_its_own() -> None:
    """GIVEN the canonical per-stream pool WHEN fixed THEN no executor is created or shut down
    per call: the work goes to the loop's default executor (bounded, one per loop)."""
    src = (
        "import asyncio\n"
        "from concurrent.futures import ThreadPoolExecutor\n\n\n"
        "async def gen(fetch):\n"
        "    loop = asyncio.get_running_loop()\n"
        "    with ThreadPoolExecutor(max_workers=2) as ex:\n"
        "        while True:\n"
        "            yield await loop.run_in_executor(ex, fetch)\n"
    )
    out = fix_source(src, [FixSite("HD101", 7, 4)])
    assert "ThreadPoolExecutor" not in out.text and "shutdown" not in out.text
    assert "        yield await loop.run_in_executor(None, fetch)\n" in out.text
    assert "default executor" in out.applied[0].description
    assert "max_workers=2" in out.applied[0].description  # the pool size it no longer sets


def test_explicit_shutdown_of_a_pool_per_call_says_it_still_leaks() -> None:
    """`pool = ThreadPoolExecutor()` ... `pool.shutdown()` inside a coroutine is fixed to not
    wait, and the description says a pool per call still leaves a thread per cancelled call;
    an application's pool (`self._pool`) gets no such note."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\n\n"
        "class Service:\n"
        "    def __init__(self):\n"
        "        self._pool = ThreadPoolExecutor()\n\n"
        "    async def close(self):\n"
        "        self._pool.shutdown()\n\n"
        "    async def once(self, loop):\n"
        "        pool = ThreadPoolExecutor()\n"
        "        await loop.run_in_executor(pool, print)\n"
        "        pool.shutdown()\n"
    )
    out = fix_source(src, [FixSite("HD101", 9, 8), FixSite("HD101", 14, 8)])
    app, once = out.applied
    assert "pool per call" not in app.description
    assert (
        "pool per call" in once.description and "one executor per application" in once.description
    )


def test_hd101_inside_sync_def_nested_in_async_is_skipped() -> None:
    """A `with` executor inside a sync def (even inside async code) is not async code."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\n\n"
        "async def outer():\n"
        "    def inner():\n"
        "        with ThreadPoolExecutor() as ex:\n"
        "            return ex.submit(len, 'a').result()\n"
        "    return inner\n"
    )
    out = fix_source(src, [FixSite("HD101", 6, 8), FixSite("HD102", 7, 19)])
    assert out.text == src
    assert all("sync function `inner`" in s.reason for s in out.skipped)


def test_hd102_skips_a_name_reassigned_to_something_else() -> None:
    """A future name that is also assigned from a non-submit call is not evidently concurrent."""
    src = (
        "async def f(pool, other):\n"
        "    fut = pool.submit(len, 'a')\n"
        "    fut = other.make()\n"
        "    return fut.result()\n"
    )
    out = fix_source(src, [FixSite("HD102", 4, 11)])
    assert out.text == src and "not evidently" in out.skipped[0].reason


def test_explicit_shutdown_already_not_waiting_is_left_alone() -> None:
    """shutdown(wait=False, cancel_futures=True) is already the fix; a computed wait is skipped."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\nex = ThreadPoolExecutor()\n\n\n"
        "async def f(w):\n"
        "    ex.shutdown(wait=False, cancel_futures=True)\n"
        "    ex.shutdown(w)\n"
    )
    out = fix_source(src, [FixSite("HD101", 7, 4), FixSite("HD101", 8, 4)])
    assert out.text == src
    assert "already" in out.skipped[0].reason
    assert "run time" in out.skipped[1].reason


def test_unknown_receiver_of_shutdown_is_skipped() -> None:
    """`thing.shutdown()` where thing is not evidently an executor is not touched."""
    src = "async def f(server):\n    server.shutdown()\n"
    out = fix_source(src, [FixSite("HD101", 2, 4)])
    assert out.text == src and "cannot tell" in out.skipped[0].reason


def test_a_fix_whose_result_would_not_compile_is_skipped() -> None:
    """The re-parse check drops a plan whose output does not compile and keeps the others."""
    src = "import asyncio\n\nasyncio.sleep(0)\nprint(1)\n"
    module = cst.parse_module(src)
    sleep_call = module.body[1].body[0].value  # type: ignore[attr-defined]
    print_call = module.body[2].body[0].value  # type: ignore[attr-defined]
    bad = Plan(
        FixSite("HD201", 3, 0),
        3,
        "await at module level",
        True,
        {sleep_call: lambda n: cst.Await(expression=n)},
    )
    good = Plan(
        FixSite("HD201", 4, 0),
        4,
        "rename",
        True,
        {print_call: lambda n: n.with_changes(func=cst.Name("repr"))},
    )
    with indexed(module, src) as index:
        code, accepted, rejected = _select(index, [bad, good], strict=True)
    assert accepted == [good] and rejected == [bad]
    assert code == "import asyncio\n\nasyncio.sleep(0)\nrepr(1)\n"


def test_import_goes_after_docstring_and_future_in_isort_order() -> None:
    """`import asyncio` lands in the first stdlib block, sorted, after __future__; the
    `import time` the fix made unused goes."""
    src = (
        '"""Doc."""\n\nfrom __future__ import annotations\n\nimport os\nimport time\n'
        "from typing import Any\n\nimport requests\n\n\nasync def f():\n    time.sleep(1)\n"
    )
    out = fix_source(src, [FixSite("HD201", 13, 4)])
    assert out.text.startswith(
        '"""Doc."""\n\nfrom __future__ import annotations\n\nimport asyncio\nimport os\n'
        "from typing import Any\n\nimport requests\n"
    )


def test_import_without_stdlib_block_gets_its_own() -> None:
    """With only third-party imports, `import asyncio` forms its own block before them."""
    src = "import requests\n\n\nasync def f():\n    import time\n\n    time.sleep(1)\n"
    out = fix_source(src, [FixSite("HD201", 7, 4)])
    assert out.text.startswith("import asyncio\n\nimport requests\n")
    assert "    await asyncio.sleep(1)\n" in out.text


def test_tab_indented_file_gets_tab_indented_fix() -> None:
    """New blocks follow the file's own indentation (tabs here)."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\n\n"
        "async def f(loop):\n"
        "\twith ThreadPoolExecutor() as ex:\n"
        "\t\tx = await loop.run_in_executor(ex, len, 'a')\n"
        "\treturn x\n"
    )
    out = fix_source(src, [FixSite("HD101", 5, 1)])
    assert "\tx = await loop.run_in_executor(None, len, 'a')\n\treturn x\n" in out.text
    assert "    " not in out.text
    compile(out.text, "tabs", "exec")


def test_explicit_shutdown_for_py38_uses_wait_false_only_and_says_so() -> None:
    """Below 3.9 there is no cancel_futures: `shutdown(wait=False)` and a note says so."""
    src = (
        "from concurrent.futures import ThreadPoolExecutor\n\npool = ThreadPoolExecutor()\n\n\n"
        "async def close():\n    pool.shutdown()\n"
    )
    out = fix_source(src, [FixSite("HD101", 7, 4)], target_python=(3, 8))
    assert "    pool.shutdown(wait=False)\n" in out.text
    assert "not cancelled" in out.applied[0].description
    again = fix_source(out.text, [FixSite("HD101", 7, 4)], target_python=(3, 8))
    assert again.text == out.text and "already" in again.skipped[0].reason
