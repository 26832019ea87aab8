"""Automatic fixes for scan findings, made with libcst so the rest of the file stays intact.

`fix_source` rewrites text; `fix_file` also keeps the file's encoding, BOM and
line endings and writes atomically. `FIXABLE` says which codes have a fix and
whether it is safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hangdoctor._lazy import lazy_attributes
from hangdoctor.fix.codes import FIXABLE

if TYPE_CHECKING:
    from hangdoctor.fix.api import fix_source
    from hangdoctor.fix.files import FileFixResult, fix_file
    from hangdoctor.fix.model import AppliedFix, FixOutcome, FixSite, SkippedFix

# libcst is imported when a fix is made, not when `hangdoctor.fix.codes` is read
_LAZY = {
    "fix_source": "hangdoctor.fix.api",
    "FileFixResult": "hangdoctor.fix.files",
    "fix_file": "hangdoctor.fix.files",
    "AppliedFix": "hangdoctor.fix.model",
    "FixOutcome": "hangdoctor.fix.model",
    "FixSite": "hangdoctor.fix.model",
    "SkippedFix": "hangdoctor.fix.model",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "FIXABLE",
    "AppliedFix",
    "FileFixResult",
    "FixOutcome",
    "FixSite",
    "SkippedFix",
    "fix_file",
    "fix_source",
]
