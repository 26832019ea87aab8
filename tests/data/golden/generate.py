"""Capture the golden py-spy samples of the newsroom app (run by hand, not by pytest).

For each variant (an interpreter and an event loop) this script builds a fresh venv
with the pinned server packages, starts the newsroom app under uvicorn, reproduces
one cause per case, takes three `py-spy dump --json --locals` samples 0.4 s apart,
kills the server by its PID and writes `<variant>/<case>.json` next to this file.
What hangdoctor must find (`expect`) is computed from the app's source and the
table of the lines it must point at (tests/data/newsroom_lines.json), never typed
here. See README.md in this folder.

    python tests/data/golden/generate.py                      # everything
    python tests/data/golden/generate.py --variant cpython-3.12 --case stream lock
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
APP = REPO / "examples" / "newsroom"
LINES = REPO / "tests" / "data" / "newsroom_lines.json"  # where hangdoctor must point
PYSPY = Path("/work/main/.venv/bin/py-spy")

# The server stack the captures were taken with; pinned so a re-run is comparable.
PACKAGES = (
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "anyio==4.16.0",
    "h11==0.16.0",
    "pydantic==2.14.4",
)
UVLOOP = "uvloop==0.23.0"


@dataclass(frozen=True)
class Variant:
    name: str
    python: str
    loop: str  # uvicorn --loop
    # Debian's python3.14 in the root scripts/py314-root builds: the server runs there,
    # chrooted in its own mount namespace, and py-spy reads it from outside
    in_root: bool = False


VARIANTS = (
    Variant("cpython-3.11", "/root/.pyenv/versions/3.11.7/bin/python3", "asyncio"),
    Variant("cpython-3.12", "/root/.pyenv/versions/3.12.1/bin/python3", "asyncio"),
    Variant("cpython-3.13", "/root/.pyenv/versions/3.13.0/bin/python3", "asyncio"),
    Variant("uvloop-3.12", "/root/.pyenv/versions/3.12.1/bin/python3", "uvloop"),
    Variant("cpython-3.14", "/usr/bin/python3.14", "asyncio", in_root=True),
)
ROOT_VENV = "hd-newsroom"  # the venv tests/py314 use too: the same PACKAGES, one cache
INSIDE_REPO = "/srv/hangdoctor"  # the checkout, bind-mounted read-only in the root

CAUSE_SECONDS = 30.0  # long enough that no cause ends while it is sampled
UPSTREAM_DELAY = 20.0  # NEWSROOM_UPSTREAM_DELAY: how long fetch_news sleeps
SAMPLES = 3
INTERVAL_S = 0.4
STARVE_REQUESTS = 45  # more than AnyIO's 40 worker threads
HTTP_TIMEOUT_S = 60.0  # every client socket's deadline

# case -> catalog code of the route /causes/<case>
CAUSES = {
    "sleep": "HD201",
    "http": "HD202",
    "socket": "HD203",
    "subprocess": "HD204",
    "file": "HD205",
    "lock": "HD206",
    "future": "HD102",
    "cpu": "HD501",
    "unknown": "HD900",
    "starve": "HD401",
}
CASES = ("stream", "stream-fixed", "healthy", *CAUSES)
_VERDICTS = {"HD501": "busy", "HD401": "starved"}
_WORKER_TAG = {"HD101": "worker", "HD102": "worker-future"}


# ---------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Marker:
    """A line hangdoctor must point at, from tests/data/newsroom_lines.json."""

    tag: str
    file: str  # relative to the app directory: api/routes/causes.py
    line: int
    text: str = ""  # the line's source, stripped


def read_markers(app: Path = APP, table: Path = LINES) -> dict[str, Marker]:
    """Every line of the table, by tag, with its line number in the app's source today.

    The table names each line by its file, the function around it and its text, so
    the app needs no marker comments (they would show in every report of it); a line
    that is not found exactly once in its function is an error: the app has changed.
    """
    found: dict[str, Marker] = {}
    for tag, where in json.loads(table.read_text(encoding="utf-8"))["lines"].items():
        lines = (app / where["file"]).read_text(encoding="utf-8").splitlines()
        funcs = [f for f in _functions(app / where["file"]) if f.name == where["function"]]
        if len(funcs) != 1:
            raise SystemExit(
                f"{tag}: {len(funcs)} functions {where['function']} in {where['file']}"
            )
        span = range(funcs[0].lineno, (funcs[0].end_lineno or funcs[0].lineno) + 1)
        hits = [n for n in span if lines[n - 1].strip() == where["line"]]
        if len(hits) != 1:
            raise SystemExit(
                f"{tag}: {where['line']!r} is in {where['function']} {len(hits)} times"
            )
        found[tag] = Marker(tag, where["file"], hits[0], where["line"])
    return found


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def enclosing_function(app: Path, marker: Marker) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """The innermost def around a marker line."""
    around = [
        f
        for f in _functions(app / marker.file)
        if f.lineno <= marker.line <= (f.end_lineno or f.lineno)
    ]
    if not around:
        raise SystemExit(f"{marker.file}:{marker.line} is not inside a function")
    return max(around, key=lambda f: f.lineno)


def busy_functions(app: Path, marker: Marker) -> list[str]:
    """The function around a CPU marker and the module's own functions it calls: a busy loop
    is sampled in any of them."""
    func = enclosing_function(app, marker)
    defined = {f.name for f in _functions(app / marker.file)}
    called = {
        n.func.id
        for n in ast.walk(func)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in defined
    }
    return sorted({func.name, *called})


def expectation(case: str, markers: dict[str, Marker], app: Path = APP) -> dict[str, Any]:
    """What the analysis must say about a case, from the table's lines."""
    if case in ("healthy", "stream-fixed"):
        return {"verdict": "healthy", "code": None}
    code = "HD101" if case == "stream" else CAUSES[case]
    marker = markers[code]
    out: dict[str, Any] = {"verdict": _VERDICTS.get(code, "blocked"), "code": code}
    out["file"] = marker.file
    if code == "HD501":
        out["functions"] = busy_functions(app, marker)
    else:
        out["line"] = marker.line
    if code in _WORKER_TAG:
        worker = markers[_WORKER_TAG[code]]
        out["worker_file"] = worker.file
        out["worker_line"] = worker.line
        out["worker_function"] = enclosing_function(app, worker).name
    return out


# ---------------------------------------------------------------- venvs and servers


@functools.cache
def _root() -> Any:
    """The cached Python 3.14 root (tests/py314/root.py builds or reuses it)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.py314.root import ensure_root

    return ensure_root()


def inside(variant: Variant, argv: list[str]) -> list[str]:
    """`argv` as run for the variant: as is, or inside the 3.14 root from the checkout."""
    if not variant.in_root:
        return argv
    return _root().run_argv(argv, binds=[f"{REPO}:{INSIDE_REPO}:ro"], wd=INSIDE_REPO)


def make_venv(variant: Variant, base: Path) -> Path:
    """A venv for the variant under `base` (reused when it is already complete)."""
    if variant.in_root:  # a path inside the root, cached there
        return Path(_root().newsroom_venv(ROOT_VENV, PACKAGES))
    venv = base / variant.name
    python = venv / "bin" / "python"
    done = venv / ".golden-ready"
    if done.is_file():
        return python
    subprocess.run([variant.python, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    packages = [*PACKAGES, *([UVLOOP] if variant.loop == "uvloop" else [])]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        check=True,
        timeout=900,
    )
    done.write_text("ok\n")
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    log: Path
    clients: list[threading.Thread] = field(default_factory=list)
    target: int | None = None  # the python under the root's unshare/chroot wrapper

    @property
    def pid(self) -> int:
        return self.target or self.proc.pid


@contextmanager
def server(python: Path, variant: Variant, app: str, env_extra: dict[str, str]) -> Iterator[Server]:
    """Start uvicorn in its own process group; always kill it (and its children) on exit."""
    port = _free_port()
    command = [
        str(python),
        "-m",
        "uvicorn",
        f"api.main:{app}",
        "--app-dir",
        "examples/newsroom",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        variant.loop,
        "--log-level",
        "warning",
    ]
    # the app's own temp files (the FIFO of the `file` case) go where we can remove them
    scratch = Path(tempfile.mkdtemp(prefix="hd-golden-tmp-"))
    env = {**os.environ, **env_extra, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(scratch)}
    env.pop("PYTHONPATH", None)
    log = scratch / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            inside(variant, command),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(proc, port, command, log)
    try:
        _wait_ready(srv)
        if variant.in_root:
            from tests.py314.root import python_child

            srv.target = python_child(proc.pid)
        yield srv
    finally:
        # the group is the server's own session: the app's children (subprocess case) go too
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for t in srv.clients:
            t.join(timeout=5)
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_ready(srv: Server, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if srv.proc.poll() is not None:
            raise SystemExit(f"server exited early:\n{srv.log.read_text()}")
        with suppress(OSError):
            if get(srv.port, "/health", timeout=2.0).startswith("HTTP/1.1 200"):
                return
        time.sleep(0.2)
    raise SystemExit(f"server did not answer /health in {deadline_s} s:\n{srv.log.read_text()}")


def get(port: int, path: str, *, timeout: float) -> str:
    """One GET over a fresh connection; returns the raw response head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def fire(srv: Server, path: str) -> None:
    """Send a request in the background and forget it (the server is killed later)."""

    def run() -> None:
        with suppress(OSError):
            get(srv.port, path, timeout=HTTP_TIMEOUT_S)

    t = threading.Thread(target=run, name=f"client {path}", daemon=True)
    t.start()
    srv.clients.append(t)


def abort_stream(srv: Server) -> None:
    """Open /news/stream, read until the first event, then drop the connection."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10.0) as s:
        s.sendall(b"GET /news/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        seen = b""
        while b"event: hello" not in seen:
            data = s.recv(4096)
            if not data:
                raise SystemExit("the stream closed before its first event")
            seen += data
        # leaving the `with` closes the socket: the client is gone


def probe(srv: Server, path: str, timeout: float = 1.5) -> str:
    """Does the server answer `path` now? 'ok', 'timeout' or 'error: ...'."""
    try:
        head = get(srv.port, path, timeout=timeout)
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error: {exc}"
    return "ok" if head.startswith("HTTP/1.1 200") else f"error: {head.splitlines()[:1]}"


def _task_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


# ---------------------------------------------------------------- reproducing a case


def reproduce(case: str, srv: Server) -> str:
    """Put the server into the case's state; returns the request that did it."""
    base_threads = _task_count(srv.pid)
    if case in ("stream", "stream-fixed"):
        abort_stream(srv)
        time.sleep(1.0)  # the server notices the reset and cancels the generator
        return "GET /news/stream, closed after the first event"
    if case == "healthy":
        for _ in range(3):
            get(srv.port, "/health", timeout=10.0)
        time.sleep(0.3)
        return "GET /health x3"
    path = f"/causes/{case}?seconds={CAUSE_SECONDS:g}"
    if case == "starve":
        for _ in range(STARVE_REQUESTS):
            fire(srv, path)
        end = time.monotonic() + 30
        while _task_count(srv.pid) < base_threads + 40 and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(1.0)
        return f"GET {path} x{STARVE_REQUESTS}"
    fire(srv, path)
    time.sleep(1.5)  # the handler reaches its blocking call
    return f"GET {path}"


def dump(pid: int) -> tuple[Any, float, float]:
    """One py-spy JSON dump with locals: (data, taken_at, duration_s)."""
    taken_at = time.time()
    start = time.monotonic()
    out = subprocess.run(
        [str(PYSPY), "dump", "--json", "--locals", "--pid", str(pid)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    duration = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"py-spy failed on pid {pid}: {out.stderr.strip()}")
    return json.loads(out.stdout), round(taken_at, 3), round(duration, 3)


def slim(data: Any, keep_locals: Callable[[dict[str, Any]], bool]) -> Any:
    """Drop `locals` from frames the analysis does not need them on (size)."""
    for thread in data:
        for frame in thread.get("frames", ()):
            if "locals" in frame and not keep_locals(frame):
                del frame["locals"]
    return data


def _keep_locals(frame: dict[str, Any]) -> bool:
    # threading.py frames carry the `self` addresses that link a joined Thread to its
    # worker; the app's own frames are small and show what the user code held
    filename = str(frame.get("filename") or "")
    return filename.endswith("/threading.py") or "/examples/newsroom/" in filename


def capture_case(
    variant: Variant, python: Path, case: str, markers: dict[str, Marker]
) -> dict[str, Any]:
    app = "fixed_app" if case == "stream-fixed" else "app"
    env = {"NEWSROOM_UPSTREAM_DELAY": f"{UPSTREAM_DELAY:g}"}
    with server(python, variant, app, env) as srv:
        request = reproduce(case, srv)
        samples = []
        for i in range(SAMPLES):
            if i:
                time.sleep(INTERVAL_S)
            data, taken_at, duration = dump(srv.pid)
            samples.append(
                {"taken_at": taken_at, "duration_s": duration, "pyspy": slim(data, _keep_locals)}
            )
        cwd = os.readlink(f"/proc/{srv.pid}/cwd")
        if variant.in_root:  # read from outside it is the host's path to the root's folder
            cwd = "/" + os.path.relpath(cwd, _root().path).removeprefix(".")
        # after the samples, so the probes never show up in them
        probes = {path: probe(srv, path) for path in ("/health", "/health/sync")}
        return {
            "pid": srv.pid,
            "python": _python_version(python, variant),
            "loop": variant.loop,
            "command": " ".join([Path(srv.command[0]).name, *srv.command[1:]]),
            "cwd": cwd,
            "case": case,
            "request": request,
            "probes": probes,
            "captured_with": _versions(python, variant),
            "samples": samples,
            "expect": expectation(case, markers),
        }


def _python_version(python: Path, variant: Variant) -> str:
    out = subprocess.run(
        inside(variant, [str(python), "-c", "import platform; print(platform.python_version())"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def _versions(python: Path, variant: Variant) -> dict[str, str]:
    names = ["fastapi", "starlette", "uvicorn", "anyio"]
    if variant.loop == "uvloop":
        names.append("uvloop")
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run(
        inside(variant, [str(python), "-c", code, *names]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(out.stdout)
    versions["py-spy"] = subprocess.run(
        [str(PYSPY), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()[-1]
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", nargs="*", choices=[v.name for v in VARIANTS])
    parser.add_argument("--case", nargs="*", choices=CASES)
    parser.add_argument("--venvs", type=Path, help="keep the venvs here and reuse them")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    markers = read_markers()
    variants = [v for v in VARIANTS if not args.variant or v.name in args.variant]
    cases = [c for c in CASES if not args.case or c in args.case]
    with tempfile.TemporaryDirectory(prefix="hd-golden-") as tmp:
        base = args.venvs or Path(tmp)
        for variant in variants:
            python = make_venv(variant, base)
            (args.out / variant.name).mkdir(parents=True, exist_ok=True)
            for case in cases:
                data = capture_case(variant, python, case, markers)
                target = args.out / variant.name / f"{case}.json"
                target.write_text(json.dumps(data, separators=(",", ":")) + "\n")
                print(
                    f"{variant.name:14} {case:13} {target.stat().st_size // 1024:5d} KiB "
                    f"probes={data['probes']}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
