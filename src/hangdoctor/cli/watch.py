"""`hangdoctor watch -- <server command>`: the loop watchdog in every worker, no code change.

The command becomes the server (exec): signals, exit status and the terminal
are the server's own, so nothing is left behind on Ctrl-C. Every Python
process it starts loads the watchdog through `sitecustomize` (see
`hangdoctor.runtime.autoinstall`) and reports each stall to stderr, or as one
JSON line to `--out`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import click

import hangdoctor
from hangdoctor.errors import HangdoctorError
from hangdoctor.runtime.autoinstall import ENV_OUT, ENV_THRESHOLD

__all__ = ["command", "watch_environment"]

_INJECT = Path(__file__).resolve().parents[1] / "runtime" / "_inject"


def watch_environment(base: dict[str, str], threshold: float, out: Path | None) -> dict[str, str]:
    """The environment that makes every Python process of a command install the watchdog."""
    env = dict(base)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_INJECT) + (os.pathsep + path if path else "")
    env[ENV_THRESHOLD] = repr(threshold)
    env["HANGDOCTOR_WATCH_PATH"] = str(Path(hangdoctor.__file__).resolve().parents[1])
    if out is not None:
        env[ENV_OUT] = str(out.resolve())
    else:
        env.pop(ENV_OUT, None)
    return env


def _resolve(argv: Sequence[str]) -> str:
    program = argv[0]
    if os.sep in program:
        if not os.access(program, os.X_OK):
            raise HangdoctorError(
                f"The server command {program!r} is not an executable file.",
                "Check the path, or give the command as you would run it in a shell.",
            )
        return program
    found = shutil.which(program)
    if found is None:
        raise HangdoctorError(
            f"The server command {program!r} was not found on PATH.",
            "Install it in this environment, or give its full path "
            "(e.g. `hangdoctor watch -- .venv/bin/uvicorn app.main:app`).",
        )
    return found


@click.command("watch", context_settings={"ignore_unknown_options": True})
@click.option(
    "--threshold",
    type=click.FloatRange(0.001, 60.0),
    default=0.25,
    show_default=True,
    help="Report a stall when the event loop does not answer for this many seconds.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Append each stall as one JSON line to FILE instead of printing it on stderr.",
)
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def command(threshold: float, out: Path | None, server: tuple[str, ...]) -> None:
    """Run a server with the loop watchdog in every worker, without changing its code.

    \b
    hangdoctor watch -- uvicorn app.main:app --workers 2
    hangdoctor watch --out stalls.jsonl -- gunicorn -k uvicorn.workers.UvicornWorker app:app

    Each stall is reported when it ends: its duration, the catalog code, your
    file:line, what the loop waited for and the request that was running (with
    HangdoctorMiddleware installed). The server's Python must be 3.10 or newer
    and must honour PYTHONPATH (not `python -I` or `-E`).
    """
    argv = list(server)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise HangdoctorError(
            "No server command was given.",
            "Put it after `--`: hangdoctor watch -- uvicorn app.main:app",
        )
    program = _resolve(argv)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()
        except OSError as exc:
            raise HangdoctorError(
                f"Cannot write the stall log {str(out)!r}: {exc.strerror or exc}.",
                "Choose a writable path for --out.",
            ) from None
    env = watch_environment(dict(os.environ), threshold, out)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(program, argv, env)
    except OSError as exc:
        raise HangdoctorError(
            f"Cannot start {argv[0]!r}: {exc.strerror or exc}.",
            "Check that the command runs on its own first.",
        ) from None
