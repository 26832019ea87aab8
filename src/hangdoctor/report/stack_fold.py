"""Which frames of a stack a report folds away, shared by the terminal and HTML renderers.

Where the thread sits (the innermost frame), the user's own frames and the
frame the user's code called always show; frames outer to the user's code,
and runs of frames from `packages` (framework and loop machinery), fold into
one line when two or more stand together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hangdoctor.analysis.frames import display_path, is_user_frame, package_of
from hangdoctor.model import Frame

__all__ = ["FoldedRun", "fold_plan"]


@dataclass(frozen=True)
class FoldedRun:
    """Two or more consecutive foldable frames, with their packages in stack order."""

    frames: tuple[tuple[int, Frame], ...]  # (index in the stack, frame)
    packages: tuple[str, ...]


def _foldable(i: int, frame: Frame, user: int | None, packages: frozenset[str]) -> bool:
    if i == 0 or is_user_frame(frame):
        return False  # where the thread sits, and the user's code, always show
    if user is not None:
        if i == user - 1:
            return False  # what the user's code called
        if i > user:
            return True  # outer to the user's code: only the machinery that called it
    return package_of(frame) in packages


def fold_plan(
    stack: Sequence[Frame],
    user: int | None,
    packages: frozenset[str],
    *,
    show_all: bool = False,
) -> list[tuple[int, Frame] | FoldedRun]:
    """Frames in order, runs of two or more foldable frames replaced by one `FoldedRun`."""
    plan: list[tuple[int, Frame] | FoldedRun] = []
    run: list[tuple[int, Frame]] = []

    def flush() -> None:
        if len(run) >= 2:
            names: list[str] = []
            for _, frame in run:
                pkg = package_of(frame) or display_path(frame.file)
                if pkg not in names:
                    names.append(pkg)
            plan.append(FoldedRun(tuple(run), tuple(names)))
        else:
            plan.extend(run)
        run.clear()

    for i, frame in enumerate(stack):
        if not show_all and _foldable(i, frame, user, packages):
            run.append((i, frame))
        else:
            flush()
            plan.append((i, frame))
    flush()
    return plan
