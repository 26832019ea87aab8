"""pytest plugin: fail an async test that blocks its event loop, or that waits for ever.

Turn it on with `--hangdoctor-threshold SECONDS` (or the `hangdoctor_threshold` ini
key; the flag wins), or per test with `@pytest.mark.hangdoctor(threshold=0.5)`;
opt a test out with `@pytest.mark.hangdoctor(enabled=False)`. See
docs/runtime-pytest.md.

`--hangdoctor-stuck-after SECONDS` (the `hangdoctor_stuck_after` ini key, the
marker's `stuck_after=`) fails an async test still running after that long with
its task graph: what each task waits on and who holds it (an await deadlock, a
drained pool, a future nobody resolves), instead of hanging the suite.

How it works. Just before an async test runs, its coroutine function (`item.obj`,
or the inner test of a Hypothesis test) is swapped for an `async def` wrapper that
runs it under a `LoopWatchdog(threshold)` started on the running loop.
pytest-asyncio and anyio's pytest plugin both read that attribute only when the
test runs, so both run the wrapper on their own event loop (a trio run has no
asyncio loop: the wrapper just awaits the test). After the test body, every stall
the watchdog recorded fails the test; a test that failed by itself keeps its own
failure and gets the stalls as an extra report section.

Cost. The plugin module imports only the standard library and pytest. With no
threshold and no marker it registers no per-test hook at all; the watchdog (and
the analysis behind it) is imported only when the first watched test runs.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import math
import os
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hangdoctor.model import Frame
    from hangdoctor.runtime.stall import StallRecord

__all__ = ["DEFAULT_THRESHOLD", "MARKER"]

MARKER = "hangdoctor"
DEFAULT_THRESHOLD = 0.25  # a bare @pytest.mark.hangdoctor with no threshold anywhere
_OPTION = "--hangdoctor-threshold"
_INI = "hangdoctor_threshold"
_STUCK_OPTION = "--hangdoctor-stuck-after"
_STUCK_INI = "hangdoctor_stuck_after"
_WATCHER = "hangdoctor-watcher"
_STOP_TIMEOUT = 5.0  # at most this long for the watchdog to classify a stall the body ended with
_KEEP = 100  # stall records kept per test (a Hypothesis test runs many examples)

_THRESHOLD_KEY = pytest.StashKey["float | None"]()
_STUCK_KEY = pytest.StashKey["float | None"]()
_ITEM_KEY = pytest.StashKey["float | None"]()
_ITEM_STUCK_KEY = pytest.StashKey["float | None"]()

AsyncTest = Callable[..., Awaitable[Any]]


# -- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hangdoctor", "hangdoctor: async tests that block the event loop")
    group.addoption(
        _OPTION,
        dest="hangdoctor_threshold",
        metavar="SECONDS",
        default=None,
        help=(
            "fail an async test (pytest-asyncio, anyio on asyncio) whose event loop is "
            "blocked longer than SECONDS; overrides the hangdoctor_threshold ini key"
        ),
    )
    parser.addini(
        _INI,
        help=(
            "fail an async test whose event loop is blocked longer than this many seconds "
            f"(empty: off; {_OPTION} overrides it)"
        ),
        default="",
    )
    group.addoption(
        _STUCK_OPTION,
        dest="hangdoctor_stuck_after",
        metavar="SECONDS",
        default=None,
        help=(
            "fail an async test (asyncio) still running after SECONDS with its task graph: "
            "what each task waits on and who holds it; overrides the hangdoctor_stuck_after "
            "ini key"
        ),
    )
    parser.addini(
        _STUCK_INI,
        help=(
            "fail an async test still running after this many seconds, with its task graph "
            f"(empty: off; {_STUCK_OPTION} overrides it)"
        ),
        default="",
    )


def _parse_threshold(value: object, where: str) -> float:
    """A positive, finite number of seconds, or ValueError with a sentence for a person."""
    number: float | None = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{where} must be a positive number of seconds (e.g. 0.25), not {value!r}")
    return number


def _global_threshold(
    config: pytest.Config,
    dest: str = "hangdoctor_threshold",
    option: str = _OPTION,
    ini: str = _INI,
) -> float | None:
    raw: object = config.getoption(dest)
    where = option
    if raw is None:
        raw = config.getini(ini)
        inifile = config.inipath.name if config.inipath is not None else "the ini file"
        where = f"{ini} (in {inifile})"
        if isinstance(raw, str) and not raw.strip():
            return None
    try:
        return _parse_threshold(raw.strip() if isinstance(raw, str) else raw, where)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(threshold=None, enabled=True): fail this async test when it blocks its "
        "event loop longer than `threshold` seconds (default: --hangdoctor-threshold or "
        "the hangdoctor_threshold ini key); enabled=False opts the test out.",
    )
    if getattr(config.option, "help", False):
        return  # `pytest --help` must work whatever the ini file says
    threshold = _global_threshold(config)
    stuck_after = _global_threshold(config, "hangdoctor_stuck_after", _STUCK_OPTION, _STUCK_INI)
    config.stash[_THRESHOLD_KEY] = threshold
    config.stash[_STUCK_KEY] = stuck_after
    if threshold is not None or stuck_after is not None:
        config.pluginmanager.register(_Watcher(config, threshold, stuck_after), _WATCHER)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines: list[str] = []
    threshold = config.stash.get(_THRESHOLD_KEY, None)
    if threshold is not None:
        lines.append(f"hangdoctor: fail async tests that block the event loop > {threshold:g} s")
    stuck_after = config.stash.get(_STUCK_KEY, None)
    if stuck_after is not None:
        lines.append(f"hangdoctor: fail async tests still waiting after {stuck_after:g} s")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With no global threshold, watch only when some collected test carries the marker."""
    if config.pluginmanager.has_plugin(_WATCHER):
        return
    if any(item.get_closest_marker(MARKER) is not None for item in items):
        config.pluginmanager.register(_Watcher(config, None, None), _WATCHER)


# -- per test -----------------------------------------------------------------------------


def _marker_settings(
    item: pytest.Item, default: float | None, default_stuck: float | None
) -> tuple[float | None, float | None]:
    """(threshold, stuck_after) for this test (None: that check is off); ValueError if bad.

    Markers are merged closest first: a function's marker overrides its class's,
    which overrides its module's, key by key.
    """
    stuck_after: float | None = None
    enabled: bool | None = None
    for mark in item.iter_markers(MARKER):  # closest first
        value = mark.kwargs.get("stuck_after")
        if value is not None and stuck_after is None:
            stuck_after = _parse_threshold(value, "stuck_after")
        if enabled is None and isinstance(mark.kwargs.get("enabled"), bool):
            enabled = mark.kwargs["enabled"]
    threshold = _marker_threshold(item, default, stuck_only=stuck_after is not None)
    if enabled is False:
        return None, None
    return threshold, stuck_after if stuck_after is not None else default_stuck


def _marker_threshold(
    item: pytest.Item, default: float | None, *, stuck_only: bool = False
) -> float | None:
    """The threshold for this test (None: not watched); ValueError for a bad marker."""
    enabled: bool | None = None
    threshold: float | None = None
    marked = False
    for mark in item.iter_markers(MARKER):
        marked = True
        kwargs = dict(mark.kwargs)
        if mark.args:
            if len(mark.args) > 1 or "threshold" in kwargs:
                raise ValueError(
                    "takes one threshold: hangdoctor(0.5) or hangdoctor(threshold=0.5)"
                )
            kwargs["threshold"] = mark.args[0]
        unknown = sorted(set(kwargs) - {"threshold", "enabled", "stuck_after"})
        if unknown:
            raise ValueError(
                f"unknown argument {', '.join(unknown)} "
                "(it takes threshold=, stuck_after= and enabled=)"
            )
        if "enabled" in kwargs and enabled is None:
            if not isinstance(kwargs["enabled"], bool):
                raise ValueError(f"enabled must be True or False, not {kwargs['enabled']!r}")
            enabled = kwargs["enabled"]
        if threshold is None and kwargs.get("threshold") is not None:
            threshold = _parse_threshold(kwargs["threshold"], "threshold")
    if enabled is False:
        return None
    if threshold is not None:
        return threshold
    if default is not None:
        return default
    return DEFAULT_THRESHOLD if marked and not stuck_only else None


def _anyio_backend_name(item: pytest.Function) -> str | None:
    funcargs: dict[str, Any] = item.funcargs
    backend = funcargs.get("anyio_backend")
    if backend is None:
        return None
    if isinstance(backend, str):
        return backend
    if isinstance(backend, tuple) and backend and isinstance(backend[0], str):
        return backend[0]
    return "?"


def _watch_target(item: pytest.Item) -> tuple[object, str, AsyncTest] | None:
    """(owner, attribute, coroutine function) that the async runner will call, or None."""
    if not isinstance(item, pytest.Function):
        return None
    backend = _anyio_backend_name(item)
    if backend is not None and backend != "asyncio":
        return None  # trio (or anything else) has no asyncio loop to watch
    obj: Any = item.obj
    hypothesis = getattr(obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", None) if hypothesis is not None else None
    if inner is not None:
        # pytest-asyncio and anyio run a Hypothesis test through its inner test
        if inspect.iscoroutinefunction(inner):
            return hypothesis, "inner_test", inner
        return None
    if inspect.iscoroutinefunction(obj):
        return item, "obj", obj
    return None


class _Watcher:
    """The per-test hooks; registered only when a threshold or a marker is in use."""

    def __init__(
        self, config: pytest.Config, default: float | None, default_stuck: float | None
    ) -> None:
        self._config = config
        self._default = default
        self._default_stuck = default_stuck

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        try:
            threshold, stuck_after = _marker_settings(item, self._default, self._default_stuck)
        except ValueError as exc:
            item.stash[_ITEM_KEY] = item.stash[_ITEM_STUCK_KEY] = None
            pytest.fail(f"invalid @pytest.mark.{MARKER}(...): {exc}", pytrace=False)
        item.stash[_ITEM_KEY] = threshold
        item.stash[_ITEM_STUCK_KEY] = stuck_after

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        threshold = item.stash.get(_ITEM_KEY, None)
        stuck_after = item.stash.get(_ITEM_STUCK_KEY, None)
        watched = threshold is not None or stuck_after is not None
        target = _watch_target(item) if watched else None
        if target is None:
            return (yield)
        owner, attribute, original = target
        watch = _Watch(threshold, _code_of(original), stuck_after=stuck_after)
        setattr(owner, attribute, _watched(original, watch))
        stuck: _Stuck | None = None
        try:
            result = yield
        except _Stuck as exc:
            stuck = exc
        except BaseException:
            if watch.stalls:
                text = _describe(watch, str(self._config.rootpath), explain=False)
                item.add_report_section("call", MARKER, text)
            raise
        finally:
            setattr(owner, attribute, original)
        if stuck is not None:  # outside the handler: the report alone, no chained traceback
            report = str(stuck)
            if watch.stalls:
                report += "\n" + _describe(watch, str(self._config.rootpath), explain=False)
            pytest.fail(report, pytrace=False)
        if watch.stalls:
            pytest.fail(_describe(watch, str(self._config.rootpath)), pytrace=False)
        return result


class _Stuck(Exception):
    """Raised in place of the cancellation that ended a test which waited too long."""


# -- the watched run ----------------------------------------------------------------------


@dataclass
class _Watch:
    """What one test's watchdogs saw (a Hypothesis test runs the body once per example)."""

    threshold: float | None
    test_code: tuple[str, str] | None = None  # (file, function name) of the test itself
    records: list[StallRecord] = field(default_factory=list)
    stalls: int = 0
    stuck_after: float | None = None

    async def run(self, func: AsyncTest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an asyncio loop (trio): nothing to watch
            return await func(*args, **kwargs)

        from hangdoctor.runtime.watchdog import LoopWatchdog

        dog = None
        if self.threshold is not None:
            dog = LoopWatchdog(self.threshold, log=False, stuck_after=None)
            dog.start(loop)
        timer = None if self.stuck_after is None else _StuckTimer(loop, self.stuck_after)
        try:
            return await func(*args, **kwargs)
        except asyncio.CancelledError:
            if timer is not None and timer.report is not None:
                raise _Stuck(timer.report) from None
            raise
        finally:
            if timer is not None:
                timer.stop()
            if dog is not None:
                # waits (without blocking the loop) until a stall the body ended with is kept
                await dog.aclose(timeout=_STOP_TIMEOUT)
                records = list(dog.records)
                self.records.extend(records)
                del self.records[_KEEP:]
                self.stalls += dog.stalls


class _StuckTimer:
    """Reads the loop's tasks while a test runs; past `stuck_after`, reports and cancels it.

    The tasks are read a few times (cheaply) so that a wait that never moved can
    be told from one that keeps moving, and fully once at the deadline, on the
    loop's own thread. The test's task is then cancelled; its wrapper turns that
    cancellation into the report.
    """

    def __init__(self, loop: Any, stuck_after: float) -> None:
        import asyncio

        from hangdoctor.runtime.tasks import TaskTracker

        self.report: str | None = None
        self._loop = loop
        self._task = asyncio.current_task()
        self._tracker = TaskTracker()
        self._tracker.waits(loop)
        self._started = loop.time()
        self._stuck_after = stuck_after
        step = max(stuck_after / 4, 0.05)
        self._handles = [loop.call_later(step * i, self._tracker.waits, loop) for i in range(1, 4)]
        self._handles.append(loop.call_later(stuck_after, self._fire))

    def stop(self) -> None:
        for handle in self._handles:
            handle.cancel()

    def _fire(self) -> None:
        try:
            self.report = _stuck_report(
                self._tracker.snapshot(self._loop),
                self._stuck_after,
                self._loop.time() - self._started,
            )
        except Exception as exc:  # never lose the timeout for a failed report
            self.report = f"(the task graph could not be read: {exc!r})"
        if self._task is not None:
            self._task.cancel()


def _code_of(func: AsyncTest) -> tuple[str, str] | None:
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is None:
        return None
    return code.co_filename, code.co_name


def _watched(func: AsyncTest, watch: _Watch) -> AsyncTest:
    @functools.wraps(func)  # keeps the name and, through __wrapped__, the signature
    async def hangdoctor_watched(*args: Any, **kwargs: Any) -> Any:
        return await watch.run(func, args, kwargs)

    return hangdoctor_watched


# -- the message --------------------------------------------------------------------------


def _stuck_report(tasks: Any, stuck_after: float, waited: float) -> str:
    """The test's task graph as a failure message: the HD6xx causes, else every wait."""
    import os
    import time

    from hangdoctor.analysis.source import SourceReader
    from hangdoctor.analysis.tasks import age, judge_tasks
    from hangdoctor.model import Snapshot

    snap = Snapshot(
        pid=os.getpid(),
        taken_at=time.time(),
        threads=(),
        tasks=tuple(tasks),
        tasks_source="runtime",
        cwd=os.getcwd(),
    )
    reader = SourceReader(cwd=os.getcwd())
    # a wait that did not move over most of the test's time counts as stuck here
    judged = judge_tasks(os.getpid(), [snap], reader, stuck_after=stuck_after / 2)
    lines = [
        f"the test was still waiting after {_seconds(waited)} s (stuck-after {stuck_after:g} s)"
    ]
    for finding in judged.findings:
        lines.append(
            f"{finding.code} {_rule_name(finding.code)} at {finding.file}:{finding.line} "
            f"in {finding.function}: {finding.message}"
        )
        for holder in finding.holders:
            took = f" took it at {holder.file}:{holder.line}" if holder.file else ""
            waits = f"; now waits at {holder.waits_at}" if holder.waits_at else ""
            lines.append(f"  task `{holder.task}`{took}{waits} [{age(holder.since_s)}]")
    if not judged.findings:
        lines.append("no task waits on another; what each task waits on:")
        for task in judged.tasks:
            where = next((f for f in task.frames if not f.file.startswith("<")), None)
            on = task.waits_on.describe() if task.waits_on else "?"
            at = f" at {reader.display(where.file)}:{where.line}" if where else ""
            lines.append(f"  task `{task.name}` waits on {on}{at} [{age(task.waiting_s)}]")
    codes = sorted({f.code for f in judged.findings})
    if codes:
        commands = ", ".join(f"`hangdoctor explain {code}`" for code in codes)
        lines.append(f"(cause and fix: {commands})")
    return "\n".join(lines)


def _rule_name(code: str) -> str:
    from hangdoctor.catalog import get_rule

    return get_rule(code).name


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _relative(path: str, rootdir: str) -> str:
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path, rootdir)
        except ValueError:
            return path
        if not rel.startswith(os.pardir + os.sep) and rel != os.pardir:
            return rel
    return path


def _stall_line(stalls: list[StallRecord], threshold: float, rootdir: str) -> str:
    """One line for one place: the same cause at the same line (a loop, Hypothesis examples)."""
    record = max(stalls, key=lambda r: r.duration)
    if len(stalls) == 1:
        how_long = f"for {_seconds(record.duration)} s"
    else:
        how_long = f"{len(stalls)} times, up to {_seconds(record.duration)} s"
    text = (
        f"event loop blocked {how_long} (threshold {_seconds(threshold)} s): "
        f"{record.code} {record.name}"
    )
    if record.line > 0:
        text += f" at {_relative(record.file, rootdir)}:{record.line} in {record.function}"
    if record.source:
        text += f": {record.source}"
    return text


def _test_frame(record: StallRecord, test_code: tuple[str, str] | None) -> Frame | None:
    """The test's own frame on the stalled stack, when the stall is deeper down."""
    if test_code is None:
        return None
    file, name = test_code
    for frame in record.stack:
        if frame.file == file and frame.function.rsplit(".", 1)[-1] == name:
            if (frame.file, frame.line) == (record.file, record.line):
                return None
            return frame
    return None


def _describe(watch: _Watch, rootdir: str, *, explain: bool = True) -> str:
    places: dict[tuple[str, str, int, str], list[StallRecord]] = {}
    for record in watch.records:
        key = (record.code, record.file, record.line, record.function)
        places.setdefault(key, []).append(record)
    lines: list[str] = []
    for stalls in places.values():
        lines.append(_stall_line(stalls, watch.threshold or 0.0, rootdir))
        first = stalls[0]
        via = _test_frame(first, watch.test_code)
        if via is not None:
            source = linecache.getline(via.file, via.line).strip()
            where = f"{_relative(via.file, rootdir)}:{via.line} in {via.function}"
            lines.append(f"  called from {where}" + (f": {source}" if source else ""))
        if first.waits_for is not None:
            lines.append(f"  waits for {first.waits_for.description}")
        lines.extend(f"  note: {note}" for note in first.notes)
    if watch.stalls > len(watch.records):
        lines.append(f"... and {watch.stalls - len(watch.records)} more")
    if len(places) > 1 or watch.stalls > len(watch.records):
        lines.insert(0, f"the event loop was blocked {watch.stalls} times:")
    if explain and watch.records:
        codes = sorted({r.code for r in watch.records})
        commands = ", ".join(f"`hangdoctor explain {code}`" for code in codes)
        lines.append(
            f"(cause and fix: {commands}; per-test threshold or opt-out: "
            "@pytest.mark.hangdoctor(threshold=..., enabled=False))"
        )
    return "\n".join(lines)
