"""Read JSON dumps: py-spy's `dump --json` lists and hangdoctor's own saved captures.

A file may hold several JSON values one after another (`py-spy dump --json`
run in a loop appends pretty-printed lists; JSON Lines puts one per line);
each list is one sample. A hangdoctor capture is one object:

    {"format": "hangdoctor-capture", "version": 1, "snapshots": [...]}

whose snapshots keep their clock (`taken_at`), so `analyze` of a saved
capture measures the same durations the live run did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from hangdoctor import __version__
from hangdoctor.capture.dump_formats._common import is_native_file, truncated
from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json
from hangdoctor.errors import BadDumpError
from hangdoctor.model import Snapshot, snapshot_from_dict, to_dict

__all__ = ["CAPTURE_FORMAT", "CAPTURE_VERSION", "capture_to_json", "looks_like_json", "parse_json"]

CAPTURE_FORMAT = "hangdoctor-capture"
CAPTURE_VERSION = 1

_START = re.compile(r"\A\s*(?:\[\s*[\[{\]]|\{\s*[\"}])")
# a JSON string, an unterminated string, or a bracket: enough to tell a cut-off value
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|"|[\[\]{}]', re.DOTALL)

_PYSPY_REMEDY = "Capture it again with `py-spy dump --json --pid PID > dump.json`."
_CUT_REMEDY = (
    "Capture it again and let the command finish writing "
    "(`py-spy dump --json --pid PID > dump.json` or `hangdoctor diagnose --save FILE`)."
)
_CAPTURE_REMEDY = "Save it again with `hangdoctor diagnose --save FILE`."


def looks_like_json(text: str) -> bool:
    """True when `text` starts like a JSON list of objects or a JSON object."""
    return bool(_START.match(text))


def capture_to_json(snapshots: Sequence[Snapshot]) -> str:
    """The hangdoctor-capture JSON document for `snapshots`, ending in a newline."""
    doc = {
        "format": CAPTURE_FORMAT,
        "version": CAPTURE_VERSION,
        "created_by": f"hangdoctor {__version__}",
        "snapshots": [to_dict(s) for s in snapshots],
    }
    return json.dumps(doc, indent=1) + "\n"


def _ends_open(text: str, pos: int) -> bool:
    """True when the JSON from `pos` stops inside a string, list or object."""
    depth = 0
    for m in _TOKENS.finditer(text, pos):
        tok = m.group(0)
        if tok == '"':
            return True
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
    return depth > 0


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _values(text: str, name: str) -> list[Any]:
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = _skip_ws(text, 0)
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except RecursionError:
            # no dump nests deeper than a few levels; the decoder recurses per level
            raise BadDumpError(
                f"{name} is JSON nested too deeply to be a dump (value {len(values) + 1}).",
                "Pass the file exactly as `py-spy dump --json` or `hangdoctor diagnose --save` "
                "wrote it.",
            ) from None
        except json.JSONDecodeError as exc:
            if _ends_open(text, pos):
                raise truncated(name, f"JSON value {len(values) + 1}", _CUT_REMEDY) from None
            raise BadDumpError(
                f"{name} is not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}).",
                "Pass the file exactly as `py-spy dump --json` or `hangdoctor diagnose --save` "
                "wrote it, without other output mixed in.",
            ) from None
        values.append(value)
        pos = _skip_ws(text, pos)
    return values


def _is_native(frame: Any) -> bool:
    if not isinstance(frame, dict):
        return False
    # py-spy --native sets `module` (the shared library) on native frames only
    return frame.get("module") is not None or is_native_file(str(frame.get("filename") or ""))


def _pyspy_sample(value: list[Any], name: str, index: int) -> Snapshot:
    threads: list[Any] = []
    for raw in value:
        if not isinstance(raw, dict) or not isinstance(raw.get("frames"), list):
            raise BadDumpError(
                f"JSON value {index} of {name} is not a py-spy dump: an entry of the list "
                "is not a thread with 'frames'.",
                _PYSPY_REMEDY,
            )
        threads.append({**raw, "frames": [f for f in raw["frames"] if not _is_native(f)]})
    return snapshot_from_pyspy_json(threads)


def _capture(doc: dict[str, Any], name: str) -> list[Snapshot]:
    version = doc.get("version")
    if isinstance(version, int) and version > CAPTURE_VERSION:
        raise BadDumpError(
            f"{name} was saved by a newer hangdoctor (capture format version {version}).",
            "Install a newer hangdoctor from its checkout to read it.",
        )
    snapshots = doc.get("snapshots")
    if version != CAPTURE_VERSION or not isinstance(snapshots, list):
        raise BadDumpError(
            f"{name} is a hangdoctor capture without a valid version or snapshot list.",
            _CAPTURE_REMEDY,
        )
    try:
        return [snapshot_from_dict(s) for s in snapshots]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadDumpError(
            f"{name} has a malformed snapshot ({type(exc).__name__}: {exc}).", _CAPTURE_REMEDY
        ) from None


def parse_json(text: str, name: str) -> list[Snapshot]:
    """Every sample in a JSON dump, in file order."""
    snapshots: list[Snapshot] = []
    for index, value in enumerate(_values(text, name), start=1):
        if isinstance(value, list):
            snapshots.append(_pyspy_sample(value, name, index))
        elif isinstance(value, dict) and value.get("format") == CAPTURE_FORMAT:
            snapshots.extend(_capture(value, name))
        elif isinstance(value, dict) and "verdict" in value and "findings" in value:
            raise BadDumpError(
                f"{name} is a hangdoctor report (a diagnosis), not a capture of stacks.",
                "Save the stacks with `hangdoctor diagnose --save FILE` and analyse that file.",
            )
        else:
            raise BadDumpError(
                f"JSON value {index} of {name} is neither a py-spy dump (a list of threads) "
                "nor a hangdoctor capture.",
                _PYSPY_REMEDY,
            )
    return snapshots
