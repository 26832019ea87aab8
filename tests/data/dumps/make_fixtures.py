"""Regenerate the real dump fixtures in this directory (run by hand, never by pytest).

    .venv/bin/python tests/data/dumps/make_fixtures.py [--pystack PATH] [--versions 3.11.7 ...]

For each CPython (pyenv, /root/.pyenv/versions/X/bin/python3) it starts
canonical_hang.py, waits until the event-loop thread is joining the worker in
`Executor.__exit__`, and captures it with the real tools:

- py-spy (the project's .venv/bin/py-spy): text and --json, three samples
  0.4 s apart appended to one file; one sample with --locals (text and JSON);
  one sample with --native, text and JSON (3.11);
- faulthandler: dump_traceback_later(0.5, repeat=True) cancelled after three
  dumps, register(SIGUSR1) with three `kill -USR1`, and the crash report of
  `python -X faulthandler` on SIGABRT (stderr saved as is); and (3.12) a
  120-deep recursion dumped with all_threads=True then False, for the `...`
  cut and the `Stack` header;
- pystack, when --pystack names its binary (install it in a throw-away venv:
  `python3 -m venv /tmp/pystack-venv && /tmp/pystack-venv/bin/pip install pystack`):
  three `pystack remote` samples, one with --native --locals (3.12), and
  `pystack core` of a core file written by gdb's `gcore` (3.12, when gcore exists).

Derived files: pyspy-jsonl-3.13.jsonl re-serialises the three real JSON
samples one per line; capture-3.12.json is hangdoctor's own --save format,
written by `save_capture` from the real JSON samples and the clock read when
each was taken. The target runs from /tmp/hangdoctor-fixtures so the paths in
every dump are the same on every run. Each process is killed by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PYSPY = ROOT / ".venv" / "bin" / "py-spy"
RUN_DIR = Path("/tmp/hangdoctor-fixtures")
SCRIPT = RUN_DIR / "canonical_hang.py"
PYENV = Path("/root/.pyenv/versions")
VERSIONS = ("3.11.7", "3.12.1", "3.13.0")
SAMPLES = 3
GAP_S = 0.4


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGABRT must not leave a core file


@contextmanager
def hung_target(
    python: Path, mode: str, *, stderr_to: Path | None = None, flags: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[str]]:
    """The canonical hang, running, with its loop thread already inside __exit__."""
    err = stderr_to.open("w") if stderr_to else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(python), *flags, str(SCRIPT), mode],
        cwd=RUN_DIR,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        preexec_fn=_no_core,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready or proc.stdout.readline().strip() != "joining":
            raise RuntimeError(f"{python} {mode}: the target did not reach the join")
        time.sleep(0.5)  # from `print` to the join inside __exit__
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if stderr_to:
            err.close()  # type: ignore[union-attr]


def run(argv: list[str], timeout: float = 60) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()[:500]}")
    return out.stdout


def samples(argv: list[str], n: int) -> list[tuple[float, str]]:
    """`n` outputs of a capture command, GAP_S apart, each with the clock read before it."""
    out = []
    for i in range(n):
        if i:
            time.sleep(GAP_S)
        taken_at = time.time()
        text = run(argv)
        if "shutdown" not in text:
            raise RuntimeError(f"{argv}: the loop thread is not in shutdown yet")
        out.append((taken_at, text))
    return out


def write(name: str, text: str) -> None:
    (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {name}")


def pyspy_fixtures(version: str, python: Path) -> None:
    short = version.rsplit(".", 1)[0]
    pyspy = str(PYSPY)
    with hung_target(python, "plain") as proc:
        pid = str(proc.pid)
        text = samples([pyspy, "dump", "--pid", pid], SAMPLES)
        js = samples([pyspy, "dump", "--json", "--pid", pid], SAMPLES)
        text_locals = samples([pyspy, "dump", "--locals", "--pid", pid], 1)
        json_locals = samples([pyspy, "dump", "--json", "--locals", "--pid", pid], 1)
        native = samples([pyspy, "dump", "--native", "--pid", pid], 1) if short == "3.11" else []
        native_json = (
            samples([pyspy, "dump", "--json", "--native", "--pid", pid], 1)
            if short == "3.11"
            else []
        )
    write(f"pyspy-text-{short}.txt", "".join(t for _, t in text))
    write(f"pyspy-json-{short}.json", "".join(t for _, t in js))
    write(f"pyspy-text-locals-{short}.txt", text_locals[0][1])
    write(f"pyspy-json-locals-{short}.json", json_locals[0][1])
    if native:
        write(f"pyspy-text-native-{short}.txt", native[0][1])
        write(f"pyspy-json-native-{short}.json", native_json[0][1])
    if short == "3.13":
        write(
            f"pyspy-jsonl-{short}.jsonl",
            "".join(json.dumps(json.loads(t)) + "\n" for _, t in js),
        )
    if short == "3.12":
        from hangdoctor.capture.dumps import save_capture
        from hangdoctor.capture.pyspy_json import snapshot_from_pyspy_json

        snaps = [
            snapshot_from_pyspy_json(
                json.loads(t), taken_at=at, python_version=version, command=str(SCRIPT)
            )
            for at, t in js
        ]
        save_capture(snaps, HERE / f"capture-{short}.json")
        print(f"wrote capture-{short}.json")


def faulthandler_fixtures(version: str, python: Path) -> None:
    short = version.rsplit(".", 1)[0]
    later = HERE / f"faulthandler-later-{short}.txt"
    with hung_target(python, "later", stderr_to=later):
        time.sleep(2.5)  # three dumps 0.5 s apart, then the Timer cancels them
    usr1 = HERE / f"faulthandler-usr1-{short}.txt"
    with hung_target(python, "usr1", stderr_to=usr1) as proc:
        for i in range(SAMPLES):
            if i:
                time.sleep(GAP_S)
            os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
    abort = HERE / f"faulthandler-abort-{short}.txt"
    with hung_target(python, "plain", stderr_to=abort, flags=("-X", "faulthandler")) as proc:
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(timeout=10)
    for path, expect in ((later, "Timeout ("), (usr1, "Current thread"), (abort, "Fatal Python")):
        text = path.read_text(encoding="utf-8")
        if expect not in text or "shutdown" not in text:
            raise RuntimeError(f"{path.name}: not the expected faulthandler output")
        print(f"wrote {path.name}")


DEEP_STACK = """\
import faulthandler


def deep(n):
    if n == 0:
        faulthandler.dump_traceback(all_threads=True)
        faulthandler.dump_traceback(all_threads=False)
        return
    deep(n - 1)


deep(120)
"""


def deep_stack_fixture(python: Path) -> None:
    """faulthandler cuts a deep stack with `...`; all_threads=False prints a `Stack` header."""
    script = RUN_DIR / "deep_stack.py"
    script.write_text(DEEP_STACK, encoding="utf-8")
    out = subprocess.run(
        [str(python), str(script)], cwd=RUN_DIR, capture_output=True, text=True, timeout=30
    )
    if "  ..." not in out.stderr or "Stack (most recent call first):" not in out.stderr:
        raise RuntimeError("deep_stack.py: not the expected faulthandler output")
    write("faulthandler-deep-3.12.txt", out.stderr)


def pystack_fixtures(version: str, python: Path, pystack: str) -> None:
    short = version.rsplit(".", 1)[0]
    core = RUN_DIR / "core"
    with hung_target(python, "plain") as proc:
        pid = str(proc.pid)
        dumps = samples([pystack, "remote", pid], SAMPLES)
        rich = samples([pystack, "remote", "--native", "--locals", pid], 1)
        if short == "3.12" and shutil.which("gcore"):
            run(["gcore", "-o", str(core), pid])
    write(f"pystack-{short}.txt", "".join(t for _, t in dumps))
    if short == "3.12":
        write(f"pystack-native-locals-{short}.txt", rich[0][1])
        core_file = RUN_DIR / f"core.{pid}"
        if core_file.exists():
            try:
                write(f"pystack-core-{short}.txt", run([pystack, "core", str(core_file)]))
            finally:
                core_file.unlink()


def _retry(what: str, fn: Callable[[], None]) -> None:
    for attempt in range(3):
        try:
            fn()
            return
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{what}: attempt {attempt + 1} failed: {exc}", file=sys.stderr)
    raise SystemExit(f"{what}: gave up after 3 attempts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pystack", help="path of a pystack binary (skipped when absent)")
    parser.add_argument("--versions", nargs="*", default=list(VERSIONS))
    args = parser.parse_args()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "canonical_hang.py", SCRIPT)
    for version in args.versions:
        python = PYENV / version / "bin" / "python3"
        _retry(f"py-spy {version}", lambda: pyspy_fixtures(version, python))  # noqa: B023
        _retry(f"faulthandler {version}", lambda: faulthandler_fixtures(version, python))  # noqa: B023
        if version.startswith("3.12."):
            _retry("faulthandler deep stack", lambda: deep_stack_fixture(python))  # noqa: B023
        if args.pystack:
            _retry(f"pystack {version}", lambda: pystack_fixtures(version, python, args.pystack))  # noqa: B023
        else:
            print(f"pystack {version}: skipped (no --pystack)")


if __name__ == "__main__":
    main()
