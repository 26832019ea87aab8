"""Name the cause of a running callback, with the catalog's matchers.

The user's frame is the innermost frame of their own code. Library frames
inner to it are what the user called: the one closest to the user frame that
matches a rule's stack signature names the cause (so `Executor.__exit__` wins
over the `Thread.join` it calls). When the wait happens in C and leaves no
library frame, the user frame's source line names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hangdoctor.analysis.frames import (
    FRAMEWORK_PACKAGES,
    frame_matches,
    is_stdlib_frame,
    is_user_frame,
    lib_path,
    package_of,
)
from hangdoctor.analysis.source import CallAtLine, SourceReader
from hangdoctor.catalog import Rule, all_rules, get_rule
from hangdoctor.model import Frame

__all__ = [
    "Classification",
    "classify_callback",
    "describe_call",
    "rule_for_call_sites",
    "rule_for_calls",
    "user_frame_index",
]

_MAX_CALL_TEXT = 48
_LOCK_TYPES = frozenset({"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore"})


@dataclass(frozen=True)
class Classification:
    rule: Rule
    user_index: int | None  # index into the frames given
    evidence: str  # the call that named the rule, as a report shows it: "`time.sleep()`"
    via_frame: bool  # named by a library frame (True) or by the source line (False)


def user_frame_index(frames: tuple[Frame, ...]) -> int | None:
    """Innermost user frame; failing that, the innermost frame of a non-framework package."""
    for i, frame in enumerate(frames):
        if is_user_frame(frame):
            return i
    for i, frame in enumerate(frames):
        pkg = package_of(frame)
        if pkg is not None and pkg not in FRAMEWORK_PACKAGES and not is_stdlib_frame(frame):
            return i
    return None


def _by_frames(frames: tuple[Frame, ...]) -> tuple[Rule, Frame] | None:
    rules = [r for r in all_rules() if r.frames]
    for frame in reversed(frames):  # outermost library frame first: what the user called
        for rule in rules:
            if any(frame_matches(frame, p) for p in rule.frames):
                return rule, frame
    return None


def rule_for_call_sites(calls: Sequence[CallAtLine]) -> tuple[Rule, CallAtLine] | None:
    """The rule for the first call that a rule names exactly, else by method name.

    A method name alone (`acquire`, `recv`) counts only for a call on an object:
    `os.path.join` is a module function, not a `Thread.join`.
    """
    rules = all_rules()
    for call in calls:
        if call.qualname is None:
            continue
        for rule in rules:
            if call.qualname in rule.calls or any(
                call.qualname.endswith("." + c) for c in rule.calls
            ):
                return rule, call
    for call in calls:
        if call.qualname is not None and not call.on_object:
            continue
        for rule in rules:
            if call.attr in rule.methods:
                return rule, call
    return None


def rule_for_calls(calls: tuple[tuple[str | None, str], ...]) -> tuple[Rule, str] | None:
    """`rule_for_call_sites` on (qualname, attr) pairs; an unresolved name is a method call."""
    sites = [CallAtLine(q, a, on_object=q is None) for q, a in calls]
    found = rule_for_call_sites(sites)
    if found is None:
        return None
    rule, call = found
    return rule, _call_name(call)


def _call_name(call: CallAtLine) -> str:
    return call.qualname or f".{call.attr}()"


def describe_call(call: CallAtLine) -> str:
    """How a report names a call: as written, with what it resolves to when that differs."""
    if call.text and len(call.text) <= _MAX_CALL_TEXT:
        written = f"`{call.text}()`"
    elif call.text:  # a long receiver expression: keep the method name only
        written = f"`(...).{call.attr}()`"
    else:
        written = f"`{_call_name(call)}`"
    if call.qualname and call.qualname != call.text:
        return f"{written} ({call.qualname})"
    return written


def _frame_call(frame: Frame) -> str:
    """`urllib.request.urlopen()` for a library frame: its module and function."""
    rel = lib_path(frame) or frame.display_file
    module = rel[:-3] if rel.endswith(".py") else rel
    module = module.removesuffix("/__init__").replace("/", ".")
    return f"`{module}.{frame.function}()`"


def classify_callback(
    frames: tuple[Frame, ...], reader: SourceReader, *, on_cpu: bool
) -> Classification:
    """Classify a callback stack (innermost first) that the loop is stuck in."""
    user = user_frame_index(frames)
    inner = frames[:user] if user is not None else frames
    calls: tuple[CallAtLine, ...] = ()
    if user is not None:
        calls = reader.calls_at(frames[user].file, frames[user].line)
    hit = _by_frames(inner)
    if hit is not None:
        rule, frame = hit
        # name the call as the user wrote it when the line shows it, else the library frame
        own = rule_for_call_sites([c for c in calls if _named_by(rule, c)])
        evidence = describe_call(own[1]) if own else _frame_call(frame)
        return Classification(rule, user, evidence, True)
    found = rule_for_call_sites(calls)
    if found is not None:
        rule, call = found
        return Classification(rule, user, describe_call(call), False)
    if user is not None and not on_cpu:
        lock = _entered_lock(frames[user], reader)
        if lock is not None:
            return Classification(get_rule("HD206"), user, lock, False)
    code = "HD501" if on_cpu else "HD900"
    evidence = describe_call(calls[0]) if calls and code == "HD900" else ""
    return Classification(get_rule(code), user, evidence, False)


def _entered_lock(frame: Frame, reader: SourceReader) -> str | None:
    """`with lock:` waiting in the lock's C `__enter__`: the evidence, else None.

    An object of a known type that is not a lock (a `with` of something else) does
    not count; an object of unknown type (`self._lock`) does, since a C-level
    `__enter__` that waits is in practice a lock's.
    """
    for entered in reader.entered_at(frame.file, frame.line):
        kind = entered.qualname.rsplit(".", 2)[-2] if entered.qualname else None
        if kind is None or kind in _LOCK_TYPES:
            shown = f"`with {entered.text}:`"
            if entered.qualname:
                shown += f" ({entered.qualname.removesuffix('.__enter__')})"
            return shown
    return None


def _named_by(rule: Rule, call: CallAtLine) -> bool:
    found = rule_for_call_sites([call])
    return found is not None and found[0].code == rule.code
