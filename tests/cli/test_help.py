"""Every option of every command says what it does: `--help` is the first thing people read."""

from __future__ import annotations

import click
import pytest

from hangdoctor.cli.main import cli


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    found = [(name, cli.get_command(ctx, name)) for name in names]
    return [("hangdoctor", cli), *((n, c) for n, c in found if c is not None)]


COMMANDS = _commands()


def test_every_command_is_covered() -> None:
    """The list below is the CLI's own: probe and doctor are in it, with the rest."""
    names = {name for name, _ in COMMANDS}
    assert {"hangdoctor", "probe", "doctor", "diagnose", "scan"} <= names


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_has_help(name: str, command: click.Command) -> None:
    """Each --option of the command carries a non-empty help text."""
    missing = [
        "/".join(p.opts)
        for p in command.params
        if isinstance(p, click.Option) and not (p.help or "").strip() and not p.hidden
    ]
    assert missing == [], f"{name}: options without help: {missing}"


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_renders(name: str, command: click.Command) -> None:
    """`--help` of the command renders and names each of its options."""
    ctx = click.Context(command, info_name=name)
    text = command.get_help(ctx)
    for p in command.params:
        if isinstance(p, click.Option) and not p.hidden:
            assert p.opts[0] in text, (name, p.opts[0])
