"""`hangdoctor demo`: the whole workflow on the bundled newsroom app, no arguments.

Start the buggy app, show /health fast, drop an SSE stream, show /health hang,
diagnose the live process, show the fix, start the fixed app and show /health
staying fast while streams are opened and dropped. Every server it starts is
stopped again, also on Ctrl-C.
"""

from __future__ import annotations

import difflib
import importlib.util
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.syntax import Syntax

from hangdoctor.capture.procs import expand_targets
from hangdoctor.errors import EXIT_OK, EXIT_PROBLEM, HangdoctorError
from hangdoctor.live import diagnose_processes
from hangdoctor.model import Diagnosis
from hangdoctor.probe.http import abort_stream, timed_get
from hangdoctor.probe.server import ManagedServer, free_port
from hangdoctor.report.console import TrimmedConsole
from hangdoctor.report.terminal import render_terminal

__all__ = ["command", "example_dir", "run_demo"]

HEALTH_DEADLINE_S = 2.0
FIXED_ROUNDS = 6  # streams opened and dropped against the fixed app


class DemoError(HangdoctorError):
    """The demo cannot run here."""


def example_dir() -> Path:
    """The newsroom app: packaged with a wheel, or in the repository checkout."""
    here = Path(__file__).resolve()
    candidates = (
        here.parents[1] / "_examples" / "newsroom",
        here.parents[3] / "examples" / "newsroom",
    )
    for path in candidates:
        if (path / "api" / "main.py").is_file():
            return path
    raise DemoError(
        "The bundled newsroom example app is missing from this installation.",
        "Run the demo from a checkout of hangdoctor "
        "(pip install -e packaging/hangdoctor-runtime -e '.[demo]').",
    )


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise DemoError(
            f"The demo needs {module}, which is not installed.",
            "Install the demo extra from the checkout: "
            "pip install -e packaging/hangdoctor-runtime -e '.[demo]'.",
        )


def _server(app: str, root: Path, port: int) -> ManagedServer:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(root),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "asyncio",
        "--no-access-log",
    ]
    return ManagedServer(
        argv,
        base_url=f"http://127.0.0.1:{port}",
        cwd=str(root),
        env={"NEWSROOM_UPSTREAM_DELAY": "20", "PYTHONUNBUFFERED": "1"},
    )


def _health_line(console: Console, base: str) -> bool:
    r = timed_get(base + "/health", timeout=HEALTH_DEADLINE_S)
    if r.ok:
        console.print(f"   GET /health -> [green]{r.status}[/] in {r.latency_s * 1000:.0f} ms")
        return True
    console.print(
        f"   GET /health -> [bold red]no answer within {HEALTH_DEADLINE_S:.1f} s[/] "
        f"({r.error}): the whole service hangs"
    )
    return False


def _diagnose(pid: int) -> Diagnosis:
    return diagnose_processes(expand_targets(pid)).diagnosis


def _fix_diff(root: Path) -> str:
    """stream.py -> stream_fixed.py, code only: the docstrings differ, the fix is the point."""
    before = (root / "api" / "routes" / "stream.py").read_text(encoding="utf-8")
    after = (root / "api" / "routes" / "stream_fixed.py").read_text(encoding="utf-8")
    doc_end = before.index('"""', 3) + 3
    after = before[:doc_end] + after[after.index('"""', 3) + 3 :]
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile="a/api/routes/stream.py",
            tofile="b/api/routes/stream.py",
            n=2,
        )
    )


def _churn(console: Console, base: str) -> tuple[int, float, int]:
    """Open and drop streams while timing /health every 100 ms; (checks, worst, timeouts)."""
    latencies: list[float] = []
    timeouts = 0
    stop = threading.Event()

    def health_loop() -> None:
        nonlocal timeouts
        while not stop.is_set():
            r = timed_get(base + "/health", timeout=HEALTH_DEADLINE_S)
            if r.ok:
                latencies.append(r.latency_s)
            else:
                timeouts += 1
            stop.wait(0.1)

    watcher = threading.Thread(target=health_loop, name="hangdoctor-demo-health", daemon=True)
    watcher.start()
    try:
        for i in range(FIXED_ROUNDS):
            abort_stream(base + "/news/stream", after=0.3 + 0.1 * (i % 3))
            time.sleep(0.3)
        time.sleep(0.5)  # the moment a hang would show: right after the last drop
    finally:
        stop.set()
        watcher.join(timeout=HEALTH_DEADLINE_S + 1)
    return len(latencies) + timeouts, max(latencies, default=0.0), timeouts


def run_demo(console: Console) -> int:
    _require("fastapi")
    _require("uvicorn")
    root = example_dir()
    console.rule("[bold]hangdoctor demo[/]: an SSE route that freezes a FastAPI service")
    console.print(f"Example app: {root}\n")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    console.print(f"[bold]1.[/] Start the newsroom app under uvicorn on {base}")
    diagnosis: Diagnosis
    with _server("api.main:app", root, port) as server:
        console.print(f"   pid {server.pid}")
        console.print("[bold]2.[/] The service answers:")
        _health_line(console, base)
        console.print("[bold]3.[/] A client opens /news/stream and goes away after 0.5 s")
        abort_stream(base + "/news/stream", after=0.5)
        time.sleep(0.3)
        console.print("[bold]4.[/] Now the health check:")
        hung = not _health_line(console, base)
        console.print(f"[bold]5.[/] hangdoctor diagnose --pid {server.pid}\n")
        started = time.monotonic()
        diagnosis = _diagnose(server.pid)
        took = time.monotonic() - started
        # as `hangdoctor diagnose --pid` prints it: locals only on request (--locals)
        shown = diagnosis.without_locals()
        console.print(render_terminal(shown, width=console.width), end="")
        console.print(f"   (verdict in {took:.1f} s)\n")
        server.stop(grace=1.0)  # its loop is blocked: it cannot shut itself down gracefully

    console.print("[bold]6.[/] The fix, as a diff (examples/newsroom/api/routes/stream_fixed.py):")
    # whole lines, wrapped by the terminal if need be: a diff cut at the width hides the fix
    diff = _fix_diff(root)
    syntax = Syntax(diff, "diff", theme="ansi_dark", background_color="default")
    console.print(syntax.highlight(diff), soft_wrap=True, end="")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    console.print(f"[bold]7.[/] Start the fixed app on {base}")
    with _server("api.main:fixed_app", root, port) as server:
        console.print(f"   pid {server.pid}")
        console.print(
            f"[bold]8.[/] Open and drop {FIXED_ROUNDS} streams while /health is checked "
            "every 100 ms"
        )
        checks, worst, timeouts = _churn(console, base)
        colour = "green" if timeouts == 0 else "red"
        console.print(
            f"   {checks} health checks, slowest {worst * 1000:.0f} ms, "
            f"[{colour}]{timeouts} timed out[/]"
        )

    hd101 = next((f for f in diagnosis.findings if f.code == "HD101"), None)
    console.print()
    if hung and hd101 is not None and timeouts == 0:
        where = f"{Path(hd101.file).name}:{hd101.line}"
        console.print(
            f"[bold green]Done:[/] the hang was caught live as HD101 at {where}, "
            "and the fixed app stays responsive. `hangdoctor explain HD101` says more."
        )
        return EXIT_OK
    console.print("[bold red]The demo did not go as expected:[/]")
    if not hung:
        console.print(" - the buggy app did not hang after the stream was dropped")
    if hd101 is None:
        console.print(" - the diagnosis did not name HD101")
    if timeouts:
        console.print(" - the fixed app missed health checks")
    return EXIT_PROBLEM


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("demo")
def command() -> None:
    """Run the whole workflow on the bundled example app.

    Starts the newsroom FastAPI app, makes it hang the way it does in production
    (a client drops an SSE stream), diagnoses the live process with py-spy,
    shows the fix and proves the fixed app stays responsive. Takes about 20 s
    and leaves no process behind, also on Ctrl-C.
    """
    # SIGTERM (from a CI runner, `timeout`, ...) must also run the cleanup
    signal.signal(signal.SIGTERM, _raise_interrupt)
    console = TrimmedConsole(highlight=False)
    click.get_current_context().exit(run_demo(console))
