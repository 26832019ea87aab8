"""What a fix request and its outcome are: sites in, applied and skipped fixes out."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AppliedFix", "FixOutcome", "FixSite", "SkippedFix"]


@dataclass(frozen=True)
class FixSite:
    """One reported place to fix, as the scan reports it (`Finding.line`, `Finding.col`)."""

    code: str  # "HD101", "HD201", "HD102", or an HD2xx / HD501 code for the unsafe fix
    line: int  # 1-based
    col: int  # 0-based; code points or UTF-8 bytes (ast's col_offset) are both accepted


@dataclass(frozen=True)
class AppliedFix:
    """A fix that was made."""

    code: str
    line: int
    description: str  # "time.sleep(x) -> await asyncio.sleep(x)", plus any note
    safe: bool
    # the reported place this fix was asked for (scan marks come from it: fix/marks.py)
    site: FixSite | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SkippedFix:
    """A site that was left as it was, and why."""

    code: str
    line: int
    reason: str  # one sentence


@dataclass(frozen=True)
class FixOutcome:
    """The fixed source and what happened at every site."""

    text: str  # the new source (== the input when nothing applied)
    applied: tuple[AppliedFix, ...]
    skipped: tuple[SkippedFix, ...]

    @property
    def changed(self) -> bool:
        return bool(self.applied)
