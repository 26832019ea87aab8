"""`--format github`: GitHub Actions workflow commands, shown as annotations on the diff.

`::error file=PATH,line=L,col=C,title=HD101::message` (`::warning` for the
rules whose severity is warning). Values are escaped as the runner expects
(`%`, CR, LF everywhere; `:` and `,` in properties too). Files that could not
be scanned become `::error` annotations titled `hangdoctor`.
"""

from __future__ import annotations

from hangdoctor.catalog import get_rule
from hangdoctor.report.scan_concise import fix_label
from hangdoctor.scan import ScanResult

__all__ = ["escape_data", "escape_property", "render_scan_github"]


def escape_data(text: str) -> str:
    """A workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (file, title)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_scan_github(result: ScanResult) -> str:
    """One annotation per finding and per file that could not be scanned."""
    out: list[str] = []
    for f in result.findings:
        kind = "warning" if get_rule(f.code).severity == "warning" else "error"
        props = (
            f"file={escape_property(f.file)},line={f.line},col={(f.col or 0) + 1},"
            f"title={escape_property(f.code)}"
        )
        label = fix_label(result, f)  # `[*] message`: the annotation says `--fix` fixes it
        message = f"{label} {f.message}" if label else f.message
        out.append(f"::{kind} {props}::{escape_data(message)}")
    for f in result.lifecycle:  # startup/shutdown code, shown apart
        props = (
            f"file={escape_property(f.file)},line={f.line},col={(f.col or 0) + 1},"
            f"title={escape_property(f'{f.code} ({f.phase})')}"
        )
        out.append(f"::notice {props}::{escape_data(f.message)}")
    for p in result.errors:
        props = f"file={escape_property(p.path)}"
        if p.line:
            props += f",line={p.line}"
        out.append(f"::error {props},title=hangdoctor::{escape_data(p.message)}")
    return "".join(line + "\n" for line in out)
