"""`fix_file`: fix a file in place without losing anything the fixes did not touch.

The text is decoded with the file's own encoding (PEP 263 coding line or BOM,
as Python reads it), the BOM and every untouched line ending are kept, and the
new bytes replace the file atomically (`hangdoctor.outfile.write_atomic`: a
temporary file in the same directory, fsync, the original mode and owner, then
`os.replace`). An unchanged text is never written, and a read-only file is
refused, as ruff and black do: the rename could replace it, but its mode says
not to.
"""

from __future__ import annotations

import difflib
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hangdoctor.fix.api import fix_source_runs
from hangdoctor.fix.endings import split_lines
from hangdoctor.fix.model import FixOutcome, FixSite, SkippedFix
from hangdoctor.outfile import is_read_only, reason, write_atomic

__all__ = ["FileFixResult", "atomic_write", "fix_file", "fix_file_runs", "unified_diff"]


@dataclass(frozen=True)
class FileFixResult:
    """What fixing one file did."""

    path: Path
    before: str  # decoded text (without BOM)
    after: str  # == before when nothing applied
    outcome: FixOutcome
    encoding: str = "utf-8"
    written: bool = False

    @property
    def changed(self) -> bool:
        return self.after != self.before

    def diff(self, label: str | None = None) -> str:
        """Unified diff of the fix, with `a/<path>` and `b/<path>` headers ("" if unchanged)."""
        return unified_diff(self.before, self.after, label or self.path.as_posix())


def unified_diff(before: str, after: str, label: str) -> str:
    """A unified diff like `git diff` prints it (marks a missing final newline)."""
    a = [c + e for c, e in split_lines(before)]
    b = [c + e for c, e in split_lines(after)]
    out: list[str] = []
    name = label.lstrip("/")  # an absolute path reads a/tmp/x.py, as git would show it
    for line in difflib.unified_diff(a, b, f"a/{name}", f"b/{name}"):
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _unfixed(path: Path, text: str, sites: Sequence[FixSite], reason: str) -> FileFixResult:
    skipped = tuple(SkippedFix(s.code, s.line, reason) for s in dict.fromkeys(sites))
    return FileFixResult(path, text, text, FixOutcome(text, (), skipped))


def _decode(data: bytes) -> tuple[str, str] | str:
    """(text, encoding) as Python would read the file, or why it cannot be read as source."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return f"The file's encoding cannot be determined ({exc.msg})."
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return f"The file is not valid {encoding} text."
    if "\x00" in text:
        return "The file contains NUL bytes, so it is not Python source."
    return text, encoding


def atomic_write(path: Path, data: bytes) -> None:
    """Replace the file `path` points to by `data` atomically, keeping its mode and owner."""
    write_atomic(path, data)


def fix_file(
    path: Path,
    sites: Sequence[FixSite],
    *,
    unsafe: bool = False,
    target_python: tuple[int, int] = (3, 10),
    write: bool = True,
) -> FileFixResult:
    """Fix `sites` in the file `path`; with `write`, replace the file when the text changed.

    Problems with the file itself (unreadable, undecodable, not writable, not
    encodable back) never raise: every site comes back skipped with the reason.
    """
    path = Path(path)
    result = fix_file_runs(path, [(sites, unsafe)], target_python=target_python)[0]
    if not write or not result.changed:
        return result
    new = result.after.encode(result.encoding)
    if is_read_only(path):
        return _undo(result, "The file is read-only; make it writable (chmod u+w) to fix it.")
    try:
        write_atomic(path, new)
    except OSError as exc:
        return _undo(result, f"The file cannot be written ({reason(exc)}).")
    return replace(result, written=True)


def fix_file_runs(
    path: Path,
    runs: Sequence[tuple[Sequence[FixSite], bool]],
    *,
    target_python: tuple[int, int] = (3, 10),
) -> list[FileFixResult]:
    """`fix_file(path, sites, unsafe=unsafe, write=False)` for each (sites, unsafe) of
    `runs`, the file read, parsed and analysed once (hangdoctor.fix.marks)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = f"The file cannot be read ({exc.strerror or exc})."
        return [_unfixed(path, "", sites, why) for sites, _ in runs]
    decoded = _decode(data)
    if isinstance(decoded, str):
        return [_unfixed(path, "", sites, decoded) for sites, _ in runs]
    text, encoding = decoded
    results = []
    for outcome in fix_source_runs(text, runs, target_python=target_python):
        result = FileFixResult(path, text, outcome.text, outcome, encoding)
        try:
            outcome.text.encode(encoding)
        except UnicodeEncodeError:
            result = _undo(result, f"The fixed text cannot be encoded in the file's {encoding}.")
        results.append(result)
    return results


def _undo(result: FileFixResult, reason: str) -> FileFixResult:
    """`result` with nothing applied: every applied fix becomes skipped with `reason`."""
    outcome = result.outcome
    skipped = outcome.skipped + tuple(SkippedFix(a.code, a.line, reason) for a in outcome.applied)
    return replace(result, after=result.before, outcome=FixOutcome(result.before, (), skipped))
