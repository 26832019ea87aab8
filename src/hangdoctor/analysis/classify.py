"""Name the cause of a running callback, with the catalog's matchers.

The user's frame is the innermost frame of their own code. Library frames
inner to it are what the user called: the one closest to the user frame that
matches a rule's stack signature names the cause (so `Executor.__exit__` wins
over the `Thread.join` it calls). When the wait happens in C and leaves no
library frame, the user frame's source line names it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hangdoctor.analysis.frames import (
    FRAMEWORK_PACKAGES,
    frame_matches,
    is_stdlib_frame,
    is_user_frame,
    package_of,
)
from hangdoctor.analysis.source import SourceReader
from hangdoctor.catalog import Rule, all_rules, get_rule
from hangdoctor.model import Frame

__all__ = ["Classification", "classify_callback", "rule_for_calls", "user_frame_index"]


@dataclass(frozen=True)
class Classification:
    rule: Rule
    user_index: int | None  # index into the frames given
    evidence: str  # the frame or the call that named the rule
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


def rule_for_calls(calls: tuple[tuple[str | None, str], ...]) -> tuple[Rule, str] | None:
    """The rule for the first call that a rule names exactly, else by method name."""
    rules = all_rules()
    for qualname, _attr in calls:
        if qualname is None:
            continue
        for rule in rules:
            if qualname in rule.calls or any(qualname.endswith("." + c) for c in rule.calls):
                return rule, qualname
    for qualname, attr in calls:
        if qualname is not None:
            continue
        for rule in rules:
            if attr in rule.methods:
                return rule, f".{attr}()"
    return None


def classify_callback(
    frames: tuple[Frame, ...], reader: SourceReader, *, on_cpu: bool
) -> Classification:
    """Classify a callback stack (innermost first) that the loop is stuck in."""
    user = user_frame_index(frames)
    inner = frames[:user] if user is not None else frames
    hit = _by_frames(inner)
    if hit is not None:
        rule, frame = hit
        return Classification(rule, user, f"{frame.function} ({frame.display_file})", True)
    if user is not None:
        top = frames[user]
        calls = reader.calls_at(top.file, top.line)
        found = rule_for_calls(tuple((c.qualname, c.attr) for c in calls))
        if found is not None:
            rule, what = found
            return Classification(rule, user, what, False)
    code = "HD501" if on_cpu else "HD900"
    return Classification(get_rule(code), user, "", False)
