"""The pytest plugin, run for real: each test starts pytest in a subprocess on small test files.

Each inner test blocks its loop for 0.3 s against a 0.1 s threshold (or stays well
clear of it), so a verdict never depends on timing to within a few milliseconds.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.gil import PATTERN, backtracking_length

pytest_plugins = ["pytester"]

INI = """\
[pytest]
addopts = --strict-markers -p no:cacheprovider
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""
HEADER = "hangdoctor: fail async tests that block the event loop > 0.1 s"


def _write(pytester: pytest.Pytester, name: str, source: str, ini: str = INI) -> str:
    """Write the ini file and the test file `name`; return the dedented source."""
    pytester.makefile(".ini", pytest=ini)
    text = textwrap.dedent(source)
    path = pytester.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def _line_of(source: str, needle: str) -> int:
    hits = [n for n, text in enumerate(source.splitlines(), start=1) if needle in text]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-rA", *args, timeout=120)


def test_blocking_pytest_asyncio_test_fails_with_cause_and_line(pytester: pytest.Pytester) -> None:
    helper = _write(
        pytester,
        "slowlib.py",
        """\
        import time


        async def fetch():
            time.sleep(0.3)
            return 42
        """,
    )
    source = _write(
        pytester,
        "tests/test_slow.py",
        """\
        import asyncio
        import time

        import pytest

        import slowlib


        @pytest.mark.asyncio
        async def test_slow():
            await asyncio.sleep(0)
            time.sleep(0.3)


        @pytest.mark.asyncio
        async def test_slow_inside():
            assert await slowlib.fetch() == 42
        """,
    )
    line = _line_of(source, "time.sleep(0.3)")
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(failed=2)
    # the path is relative to the rootdir; the failure is the message, not a traceback
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow _*",
            "event loop blocked for 0.* s (threshold 0.10 s): HD201 time-sleep-in-async"
            f" at tests/test_slow.py:{line} in test_slow: time.sleep(0.3)",
            "(cause and fix: `hangdoctor explain HD201`*",
        ]
    )
    # blocked deeper down: the line that blocks, then the test's line that led there
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow_inside _*",
            "event loop blocked for 0.* s (threshold 0.10 s): HD201 time-sleep-in-async"
            f" at slowlib.py:{_line_of(helper, 'time.sleep')} in fetch: time.sleep(0.3)",
            f"  called from tests/test_slow.py:{_line_of(source, 'fetch()')}"
            " in test_slow_inside: assert await slowlib.fetch() == 42",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "hangdoctor_watched" not in result.stdout.str()


def test_non_blocking_and_sync_tests_pass_and_header_shows_settings(
    pytester: pytest.Pytester,
) -> None:
    _write(
        pytester,
        "test_fine.py",
        """\
        import asyncio
        import time

        import pytest


        @pytest.mark.asyncio
        async def test_awaits(request):
            for _ in range(10):
                await asyncio.sleep(0.02)
            assert request.node.name == "test_awaits"  # fixtures still resolve


        def test_sync_may_block():
            time.sleep(0.3)
        """,
    )
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([HEADER])


def test_anyio_asyncio_backend_is_watched(pytester: pytest.Pytester) -> None:
    source = _write(
        pytester,
        "test_anyio.py",
        """\
        import time

        import anyio
        import pytest


        @pytest.fixture
        def anyio_backend():
            return "asyncio"


        @pytest.mark.anyio
        async def test_slow_anyio():
            await anyio.sleep(0)
            time.sleep(0.3)


        @pytest.mark.anyio
        async def test_fine_anyio():
            await anyio.sleep(0.05)
        """,
    )
    line = _line_of(source, "time.sleep(0.3)")
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*HD201 time-sleep-in-async at test_anyio.py:{line} in test_slow_anyio*",
            "FAILED test_anyio.py::test_slow_anyio - Failed: event loop blocked for 0.*",
        ]
    )


def test_anyio_trio_backend_is_left_alone(pytester: pytest.Pytester) -> None:
    pytest.importorskip("trio")
    _write(
        pytester,
        "test_trio.py",
        """\
        import time

        import pytest


        @pytest.fixture
        def anyio_backend():
            return "trio"


        @pytest.mark.anyio
        async def test_on_trio():
            time.sleep(0.3)
        """,
    )
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(passed=1)


def test_a_runner_without_an_asyncio_loop_is_left_alone(pytester: pytest.Pytester) -> None:
    # stands in for any runner with no asyncio loop (pytest-trio, a home-made one):
    # the watched wrapper is called, finds no running loop and just runs the test
    pytester.makeconftest(
        """\
        import inspect

        import pytest


        @pytest.hookimpl(tryfirst=True)
        def pytest_pyfunc_call(pyfuncitem):
            if not inspect.iscoroutinefunction(pyfuncitem.obj):
                return None
            names = pyfuncitem._fixtureinfo.argnames
            coro = pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names})
            try:
                coro.send(None)
            except StopIteration:
                return True
            raise AssertionError("the test awaited something")
        """
    )
    _write(
        pytester,
        "test_plain.py",
        """\
        import time

        import pytest


        @pytest.mark.hangdoctor(threshold=0.1)
        async def test_driven_by_hand(request):
            time.sleep(0.3)
            assert request.node.name == "test_driven_by_hand"
        """,
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_ini_key_sets_the_threshold_and_the_flag_wins(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        "test_ini.py",
        """\
        import time

        import pytest


        @pytest.mark.asyncio
        async def test_slow():
            time.sleep(0.3)
        """,
        ini=INI + "hangdoctor_threshold = 0.1\n",
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([HEADER, "*HD201 time-sleep-in-async at test_ini.py:*"])

    result = _run(pytester, "--hangdoctor-threshold", "2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["hangdoctor: * > 2 s"])


def test_marker_sets_the_threshold_and_opts_out(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        "test_marks.py",
        """\
        import time

        import pytest


        @pytest.mark.asyncio
        @pytest.mark.hangdoctor(threshold=2.0)
        async def test_allowed_longer():
            time.sleep(0.3)


        @pytest.mark.asyncio
        @pytest.mark.hangdoctor(enabled=False)
        async def test_opted_out():
            time.sleep(0.3)


        @pytest.mark.asyncio
        @pytest.mark.hangdoctor(threshold="soon")
        async def test_bad_marker():
            pass
        """,
    )
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_bad_marker*",
            "invalid @pytest.mark.hangdoctor(...): threshold must be a positive number of"
            " seconds (e.g. 0.25), not 'soon'",
        ]
    )


def test_marker_alone_activates_the_plugin_for_that_test(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        "test_marked.py",
        """\
        import time

        import pytest


        @pytest.mark.asyncio
        @pytest.mark.hangdoctor(threshold=0.1)
        async def test_marked():
            time.sleep(0.3)


        @pytest.mark.asyncio
        async def test_unmarked():
            time.sleep(0.3)
        """,
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_marked.py::test_marked - Failed: event loop blocked for 0.*"]
    )
    assert "hangdoctor:" not in result.stdout.str()  # no global threshold: no header


def test_a_test_that_fails_by_itself_keeps_its_own_failure(pytester: pytest.Pytester) -> None:
    source = _write(
        pytester,
        "test_own.py",
        """\
        import time

        import pytest


        @pytest.mark.asyncio
        async def test_broken():
            time.sleep(0.3)
            assert 1 + 1 == 3
        """,
    )
    line = _line_of(source, "time.sleep(0.3)")
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       assert (1 + 1) == 3",
            "*- Captured hangdoctor call -*",
            "event loop blocked for 0.* s (threshold 0.10 s): HD201 time-sleep-in-async"
            f" at test_own.py:{line} in test_broken: time.sleep(0.3)",
            "*short test summary info*",
            "FAILED test_own.py::test_broken - assert (1 + 1) == 3",
        ]
    )


def test_c_code_holding_the_gil_is_caught(pytester: pytest.Pytester) -> None:
    # a catastrophic regex holds the GIL, freezing the watchdog's thread too: the stall
    # is reported with its line when the watchdog gets to capture it, and at least
    # by its duration when the loop answered before the watchdog's thread woke up
    n, _ = backtracking_length(0.5)
    _write(
        pytester,
        "test_gil.py",
        f"""\
        import re

        import pytest


        @pytest.mark.asyncio
        async def test_backtracks():
            re.match(r"{PATTERN}", "a" * {n} + "b")
        """,
    )
    result = _run(pytester, "--hangdoctor-threshold", "0.1")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r"event loop blocked for \d+\.\d+ s \(threshold 0\.10 s\): "
            r"HD501 cpu-bound-on-loop( at test_gil\.py:8 in test_backtracks.*)?$"
        ]
    )


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (("--hangdoctor-threshold", "abc"), "", "--hangdoctor-threshold"),
        ((), "hangdoctor_threshold = -0.5\n", "hangdoctor_threshold (in pytest.ini)"),
    ],
    ids=["flag", "ini"],
)
def test_bad_threshold_is_a_usage_error(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, message: str
) -> None:
    _write(pytester, "test_any.py", "def test_nothing():\n    pass\n", ini=INI + ini)
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {message} must be a positive number of seconds (e.g. 0.25), not *"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_no_threshold_means_the_plugin_is_inactive(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        "test_off.py",
        """\
        import sys
        import time

        import pytest


        @pytest.mark.asyncio
        async def test_blocks(request):
            time.sleep(0.3)
            assert not request.config.pluginmanager.has_plugin("hangdoctor-watcher")
            assert "hangdoctor.runtime.watchdog" not in sys.modules
        """,
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "hangdoctor:" not in result.stdout.str()


# -- stuck tests ----------------------------------------------------------------------------


def test_a_deadlocked_test_fails_with_its_task_graph(pytester: pytest.Pytester) -> None:
    """GIVEN two tasks that take two locks in opposite orders WHEN the test waits past
    --hangdoctor-stuck-after THEN it fails naming HD601, both tasks and both lines, instead
    of hanging the suite."""
    source = _write(
        pytester,
        "test_bank.py",
        """\
        import asyncio

        import pytest

        accounts = asyncio.Lock()
        ledger = asyncio.Lock()


        async def transfer():
            async with accounts:
                await asyncio.sleep(0.05)
                async with ledger:  # transfer waits
                    pass


        async def close_day():
            async with ledger:
                await asyncio.sleep(0.05)
                async with accounts:  # close_day waits
                    pass


        @pytest.mark.asyncio
        async def test_transfer_during_close():
            await asyncio.gather(
                asyncio.create_task(transfer(), name="transfer"),
                asyncio.create_task(close_day(), name="close-day"),
            )
        """,
    )
    result = _run(pytester, "--hangdoctor-stuck-after", "1")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "hangdoctor: fail async tests still waiting after 1 s" in out
    assert "the test was still waiting after" in out
    assert "HD601 await-deadlock at test_bank.py:" in out
    for needle in ("# transfer waits", "# close_day waits"):
        assert f"test_bank.py:{_line_of(source, needle)}" in out
    assert "task `transfer`" in out and "task `close-day`" in out
    assert "`hangdoctor explain HD601`" in out


def test_a_test_waiting_on_an_event_nobody_sets_lists_what_it_waits_on(
    pytester: pytest.Pytester,
) -> None:
    source = _write(
        pytester,
        "test_wait.py",
        """\
        import asyncio

        import pytest


        @pytest.mark.asyncio
        @pytest.mark.hangdoctor(stuck_after=0.8)
        async def test_never_set():
            ready = asyncio.Event()
            await ready.wait()  # nobody sets it
        """,
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "HD603 lost-wakeup" in out
    assert f"test_wait.py:{_line_of(source, 'nobody sets it')}" in out
    assert "asyncio.Event `ready`" in out


def test_a_slow_test_that_keeps_moving_passes_before_the_deadline(
    pytester: pytest.Pytester,
) -> None:
    _write(
        pytester,
        "test_moving.py",
        """\
        import asyncio

        import pytest


        @pytest.mark.asyncio
        async def test_polls():
            for _ in range(20):
                await asyncio.sleep(0.02)
        """,
    )
    result = _run(pytester, "--hangdoctor-stuck-after", "5")
    result.assert_outcomes(passed=1)


def test_bad_stuck_after_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _write(pytester, "test_any.py", "def test_nothing():\n    pass\n")
    result = _run(pytester, "--hangdoctor-stuck-after", "nan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--hangdoctor-stuck-after must be a positive number of seconds" in result.stderr.str()
