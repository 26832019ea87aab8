"""The JSON Schemas (draft 2020-12) of every JSON document and record hangdoctor writes.

The `*.json` files next to this module are the contract: `hangdoctor schema NAME`
prints them, the tests validate every output against them, and docs/json-schema.md
is generated from them (`python -m hangdoctor.schemas`, `--check` to compare), so
a key's meaning is written once, in its `description`.

Each file stands alone (no reference to another file): a reader can validate with
one file and any draft 2020-12 validator. Objects shared between outputs (a frame,
a request) are therefore copied into each file's `$defs`; a test keeps the copies equal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from hangdoctor.errors import HangdoctorError

__all__ = [
    "SCHEMAS",
    "UnknownSchemaError",
    "check_docs",
    "default_docs_path",
    "load_schema",
    "main",
    "render_markdown",
    "schema_text",
]

# name -> what prints it: the order of `hangdoctor schema --list` and of the docs
SCHEMAS: dict[str, str] = {
    "diagnose": "`diagnose --format json` and `analyze FILE --format json`: the diagnosis",
    "probe": "`probe --format json`: a probe run, its timings and the capture",
    "scan": "`scan --format json`: the static scan's findings",
    "stall": "one `stall` line of `watch --out` (JSON Lines): a stall of one event loop",
    "stuck": "one `stuck` line of `watch --out` (JSON Lines): tasks stuck on a healthy loop",
}

_BANNER = (
    "<!-- Generated from src/hangdoctor/schemas/*.json by `python -m hangdoctor.schemas`:"
    " edit the schemas' descriptions, not this file. -->"
)


class UnknownSchemaError(HangdoctorError):
    """A schema name hangdoctor does not have."""


def schema_text(name: str) -> str:
    """The schema file as shipped, byte for byte (what `hangdoctor schema NAME` prints)."""
    if name not in SCHEMAS:
        raise UnknownSchemaError(
            f"There is no schema named {name!r}.",
            f"Pick one of: {', '.join(SCHEMAS)} (`hangdoctor schema --list` says what each is).",
        )
    return resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The schema as JSON data."""
    data: dict[str, Any] = json.loads(schema_text(name))
    return data


# -- docs/json-schema.md ----------------------------------------------------------------


def _label(schema: dict[str, Any], ref: str) -> str:
    """`#/$defs/frame` -> `frame object` (the def's title without its key hint)."""
    title: str = schema["$defs"][ref.rsplit("/", 1)[1]]["title"]
    title = title.split(" (", 1)[0]
    # "Frame object" -> "frame object", but "CPU object" stays
    return title if title[1:2].isupper() else title[0].lower() + title[1:]


def _plural(kind: str) -> str:
    return kind + ("s" if not kind.endswith("s") else "")


def _type_of(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return _label(schema, prop["$ref"])
    if "anyOf" in prop:
        return " or ".join(_type_of(schema, p) for p in prop["anyOf"])
    if "const" in prop:
        kind = "string" if isinstance(prop["const"], str) else "integer"
        return f"{kind}, always `{json.dumps(prop['const'])}`"
    if "enum" in prop:
        kinds = {type(v).__name__ for v in prop["enum"] if v is not None}
        base = {"str": "string", "int": "integer"}.get(kinds.pop() if len(kinds) == 1 else "", "")
        return base + (" or null" if None in prop["enum"] else "")
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = prop.get("items")
        if isinstance(items, dict) and items:
            if "prefixItems" in items:
                return "array of pairs"
            return f"array of {_plural(_type_of(schema, items))}"
        return "array"
    return str(kind)


def _meaning(prop: dict[str, Any]) -> str:
    text = str(prop.get("description", ""))
    values = [v for v in prop.get("enum", ()) if v is not None]
    if values and not all(f"`{v}`" in text for v in values):
        text += " One of " + ", ".join(f"`{v}`" for v in values) + "."
    return text.replace("|", "\\|").replace("\n", " ")


def _table(schema: dict[str, Any], node: dict[str, Any]) -> list[str]:
    required = set(node.get("required", ()))
    rows = ["| key | type | meaning |", "| --- | --- | --- |"]
    for key, prop in node["properties"].items():
        kind = _type_of(schema, prop) + ("" if key in required else " (optional)")
        rows.append(f"| `{key}` | {kind} | {_meaning(prop)} |")
    return rows


def render_markdown() -> str:
    """docs/json-schema.md: every schema, key by key, from the schemas' descriptions."""
    out = [
        "# JSON schemas",
        "",
        _BANNER,
        "",
        "Every JSON document and record hangdoctor writes has a JSON Schema (draft 2020-12),"
        " shipped in the package and printed by `hangdoctor schema NAME`. Every document and"
        " record carries an integer `schema_version`, raised only by a breaking change: within"
        " a version keys are only added, never renamed or removed, and a key's meaning never"
        " changes. A reader should ignore keys it does not know. Values that are not known"
        " are `null`, never missing.",
        "",
        "| name | what |",
        "| --- | --- |",
        *(f"| `{name}` | {what} |" for name, what in SCHEMAS.items()),
        "",
    ]
    shown: dict[str, tuple[str, str]] = {}  # def's JSON -> (schema name, title) already shown
    for name in SCHEMAS:
        schema = load_schema(name)
        out += [f"## {name}: {schema['title']}", "", schema["description"], ""]
        if schema.get("additionalProperties") is not False:
            out += ["The top level is open: a later version may add keys to it.", ""]
        out += ["### Top level", "", *_table(schema, schema), ""]
        for example in schema.get("examples", ()):
            out += ["### Example", "", "```json", json.dumps(example, indent=2), "```", ""]
        for node in schema["$defs"].values():
            same = json.dumps(node, sort_keys=True)
            title = node["title"]
            if same in shown and shown[same][0] != name:
                out += [f"### {title}", "", f"As in `{shown[same][0]}` above.", ""]
                continue
            shown.setdefault(same, (name, title))
            out += [f"### {title}", "", node["description"], ""]
            if "properties" in node:
                out += [*_table(schema, node), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def default_docs_path() -> Path:
    """docs/json-schema.md of this checkout."""
    return Path(__file__).resolve().parents[3] / "docs" / "json-schema.md"


def check_docs(path: Path) -> bool:
    """True when the file at `path` is what `render_markdown` makes."""
    try:
        return path.read_text(encoding="utf-8") == render_markdown()
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hangdoctor.schemas [--check] [FILE]`: write (or check) docs/json-schema.md."""
    parser = argparse.ArgumentParser(prog="python -m hangdoctor.schemas")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("file", nargs="?", type=Path, default=None)
    args = parser.parse_args(argv)
    path: Path = args.file or default_docs_path()
    if args.check:
        if check_docs(path):
            return 0
        print(f"{path} is stale: run `python -m hangdoctor.schemas`.", file=sys.stderr)
        return 1
    path.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {path}")
    return 0
