"""Snapshots in, Diagnosis out: which loop is blocked, by what, at which line."""

from __future__ import annotations

from hangdoctor.analysis.diagnose import analyze
from hangdoctor.analysis.frames import is_stdlib_frame, is_user_frame, lib_path
from hangdoctor.analysis.source import SourceReader

__all__ = ["SourceReader", "analyze", "is_stdlib_frame", "is_user_frame", "lib_path"]
