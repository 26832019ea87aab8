"""One reader per saved-dump format; `hangdoctor.capture.dumps` picks the right one."""

from __future__ import annotations

from hangdoctor.capture.dump_formats._common import DumpFormat

__all__ = ["DumpFormat"]
