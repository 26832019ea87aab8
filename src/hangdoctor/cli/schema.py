"""`hangdoctor schema NAME`: print the JSON Schema of one of hangdoctor's JSON outputs."""

from __future__ import annotations

import click

from hangdoctor.schemas import SCHEMAS, schema_text

__all__ = ["command"]

_NAMES = "\n".join(f"  {name:<9} {what}" for name, what in SCHEMAS.items())


@click.command(
    "schema",
    help=(
        "Print the JSON Schema (draft 2020-12) of one of hangdoctor's JSON outputs.\n\n"
        "Validate a report in CI with any JSON Schema validator, e.g.\n\n"
        "\b\n"
        "  hangdoctor schema diagnose > diagnose.schema.json\n"
        "  hangdoctor analyze dump.txt --format json > report.json\n"
        "  check-jsonschema --schemafile diagnose.schema.json report.json\n\n"
        "Without NAME (or with --list), list the schemas. NAME is one of:\n\n"
        f"\b\n{_NAMES}\n\n"
        "Every document and record carries an integer `schema_version`, raised only by a"
        " breaking change. docs/json-schema.md explains every key."
    ),
)
@click.argument("name", required=False)
@click.option("--list", "list_all", is_flag=True, help="List the schemas, one line each.")
def command(name: str | None, list_all: bool) -> None:
    if list_all or name is None:
        width = max(len(n) for n in SCHEMAS)
        for known, what in SCHEMAS.items():
            click.echo(f"{known:<{width}}  {what}")
        return
    # an unknown NAME raises UnknownSchemaError: one sentence on stderr, exit 2 (HangdoctorGroup)
    click.echo(schema_text(name), nl=False)
