"""How the CLI reports failures: one sentence and the remedy, never a traceback.

Every command runs inside `HangdoctorGroup.invoke`, which turns a
`HangdoctorError` into `error: ...` / `remedy: ...` on stderr with exit 2, and
anything unexpected into one line that asks for `-v` (which shows the traceback).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from hangdoctor.errors import EXIT_COULD_NOT_LOOK, HangdoctorError

__all__ = ["HangdoctorGroup", "report_error"]


def report_error(exc: HangdoctorError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    if exc.remedy:
        lines = exc.remedy.splitlines() or [""]
        click.echo(f"remedy: {lines[0]}", err=True)
        for line in lines[1:]:
            click.echo(f"  {line}", err=True)


class HangdoctorGroup(click.Group):
    """A click group whose commands fail with a sentence and exit 2, not a traceback.

    `lazy_commands` maps a command name to the module whose `command` it is,
    imported only when that command runs (or help lists it).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module = importlib.import_module(self.lazy_commands[cmd_name])
            command: click.Command = module.command
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HangdoctorError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            report_error(exc)
            sys.exit(EXIT_COULD_NOT_LOOK)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            sys.exit(EXIT_COULD_NOT_LOOK)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(
                f"error: hangdoctor failed unexpectedly ({type(exc).__name__}: {exc}).", err=True
            )
            click.echo("remedy: run again with -v for details and report it as a bug.", err=True)
            sys.exit(EXIT_COULD_NOT_LOOK)
