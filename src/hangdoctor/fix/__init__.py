"""Automatic fixes for scan findings, made with libcst so the rest of the file stays intact.

`fix_source` rewrites text; `fix_file` also keeps the file's encoding, BOM and
line endings and writes atomically. `FIXABLE` says which codes have a fix and
whether it is safe.
"""

from __future__ import annotations

from hangdoctor.fix.api import FIXABLE, fix_source
from hangdoctor.fix.files import FileFixResult, fix_file
from hangdoctor.fix.model import AppliedFix, FixOutcome, FixSite, SkippedFix

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
