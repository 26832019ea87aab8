"""Which catalog codes have an automatic fix, and which of those are safe.

Kept apart from the fixes themselves (libcst): a scan that only reports needs
this table, and should not pay for importing the rewriting machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["FIXABLE", "SAFE_CODES", "UNSAFE_CODES"]

SAFE_CODES = ("HD101", "HD102", "HD201")  # fixes that keep behaviour: applied by --fix
# wrapping a sync call in `await asyncio.to_thread(...)`: applied only with --unsafe-fixes
UNSAFE_CODES = ("HD202", "HD203", "HD204", "HD205", "HD206", "HD207", "HD501")

FIXABLE: Mapping[str, bool] = MappingProxyType(
    {**dict.fromkeys(SAFE_CODES, True), **dict.fromkeys(UNSAFE_CODES, False)}
)
