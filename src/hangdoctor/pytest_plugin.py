"""pytest plugin: fail an async test that blocks its event loop longer than a threshold.

Turn it on with `--hangdoctor-threshold SECONDS` (or the `hangdoctor_threshold` ini
key; the flag wins), or per test with `@pytest.mark.hangdoctor(threshold=0.5)`;
opt a test out with `@pytest.mark.hangdoctor(enabled=False)`. See
docs/runtime-pytest.md.

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
_WATCHER = "hangdoctor-watcher"
_STOP_TIMEOUT = 5.0  # at most this long for the watchdog to classify a stall the body ended with
_KEEP = 100  # stall records kept per test (a Hypothesis test runs many examples)

_THRESHOLD_KEY = pytest.StashKey["float | None"]()
_ITEM_KEY = pytest.StashKey["float | None"]()

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


def _global_threshold(config: pytest.Config) -> float | None:
    raw: object = config.getoption("hangdoctor_threshold")
    where = _OPTION
    if raw is None:
        raw = config.getini(_INI)
        inifile = config.inipath.name if config.inipath is not None else "the ini file"
        where = f"{_INI} (in {inifile})"
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
    config.stash[_THRESHOLD_KEY] = threshold
    if threshold is not None:
        config.pluginmanager.register(_Watcher(config, threshold), _WATCHER)


def pytest_report_header(config: pytest.Config) -> list[str]:
    threshold = config.stash.get(_THRESHOLD_KEY, None)
    if threshold is None:
        return []
    return [f"hangdoctor: fail async tests that block the event loop > {threshold:g} s"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With no global threshold, watch only when some collected test carries the marker."""
    if config.pluginmanager.has_plugin(_WATCHER):
        return
    if any(item.get_closest_marker(MARKER) is not None for item in items):
        config.pluginmanager.register(_Watcher(config, None), _WATCHER)


# -- per test -----------------------------------------------------------------------------


def _marker_threshold(item: pytest.Item, default: float | None) -> float | None:
    """The threshold for this test (None: not watched); ValueError for a bad marker.

    Markers are merged closest first: a function's marker overrides its class's,
    which overrides its module's, key by key.
    """
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
        unknown = sorted(set(kwargs) - {"threshold", "enabled"})
        if unknown:
            raise ValueError(
                f"unknown argument {', '.join(unknown)} (it takes threshold= and enabled=)"
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
    return DEFAULT_THRESHOLD if marked else None


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

    def __init__(self, config: pytest.Config, default: float | None) -> None:
        self._config = config
        self._default = default

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        try:
            item.stash[_ITEM_KEY] = _marker_threshold(item, self._default)
        except ValueError as exc:
            item.stash[_ITEM_KEY] = None
            pytest.fail(f"invalid @pytest.mark.{MARKER}(...): {exc}", pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        threshold = item.stash.get(_ITEM_KEY, None)
        target = _watch_target(item) if threshold is not None else None
        if threshold is None or target is None:
            return (yield)
        owner, attribute, original = target
        watch = _Watch(threshold, _code_of(original))
        setattr(owner, attribute, _watched(original, watch))
        try:
            result = yield
        except BaseException:
            if watch.stalls:
                text = _describe(watch, str(self._config.rootpath), explain=False)
                item.add_report_section("call", MARKER, text)
            raise
        finally:
            setattr(owner, attribute, original)
        if watch.stalls:
            pytest.fail(_describe(watch, str(self._config.rootpath)), pytrace=False)
        return result


# -- the watched run ----------------------------------------------------------------------


@dataclass
class _Watch:
    """What one test's watchdogs saw (a Hypothesis test runs the body once per example)."""

    threshold: float
    test_code: tuple[str, str] | None = None  # (file, function name) of the test itself
    records: list[StallRecord] = field(default_factory=list)
    stalls: int = 0

    async def run(self, func: AsyncTest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an asyncio loop (trio): nothing to watch
            return await func(*args, **kwargs)

        from hangdoctor.runtime.watchdog import LoopWatchdog

        dog = LoopWatchdog(self.threshold, log=False)
        dog.start(loop)
        try:
            return await func(*args, **kwargs)
        finally:
            # waits (without blocking the loop) until a stall the body ended with is recorded
            await dog.aclose(timeout=_STOP_TIMEOUT)
            records = list(dog.records)
            self.records.extend(records)
            del self.records[_KEEP:]
            self.stalls += dog.stalls


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
        lines.append(_stall_line(stalls, watch.threshold, rootdir))
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
