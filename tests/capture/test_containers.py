"""The setups of docs/permissions.md, reproduced here with real processes and the real CLI.

A second user (hangdoctor as uid 65534 on root's server, and root on uid 65534's
server), root without CAP_SYS_PTRACE (`capsh --drop=cap_sys_ptrace`, Docker's
default), and a server in its own PID and mount namespace chrooted into a light
root (`unshare --pid --mount --fork` + chroot), diagnosed from the host and from
inside. Each test checks the exact sentence a user reads, or the diagnosis.

The chroot is built inside the new mount namespace by bind-mounting the host's
/usr, /etc, /dev, /root/.pyenv and the checkout: those mounts live and die with
that namespace, so nothing is ever mounted on the host.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.apt import need_tools
from tests.conftest import APP_DIR, ROOT, Background, expected

from hangdoctor.capture.preflight import ptrace_facts
from hangdoctor.capture.procs import children
from hangdoctor.probe.http import timed_get
from hangdoctor.probe.server import ManagedServer, free_port

pytestmark = pytest.mark.e2e

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
NO_PTRACE = ["capsh", "--drop=cap_sys_ptrace", "--"]
BLOCK_S = 6.0  # how long a request blocks the loop: longer than hangdoctor's start + sampling
SLEEP = expected("HD201")
# Builds the light root inside the new mount namespace, then runs the server in it at cwd /.
ENTER_ROOT = """\
set -e
root=$1; shift
for dir in usr etc dev root/.pyenv {checkout}; do mount --rbind "/$dir" "$root/$dir"; done
mount -t proc proc "$root/proc"
exec chroot "$root" /usr/bin/env -C / "$@"
"""
# A plain asyncio program run by Debian's own python3 (libpython linked in statically,
# so /proc/PID/maps names no libpython): its loop blocks in a coroutine at BLOCKING_LINE.
STATIC_PYTHON = "/usr/bin/python3"
BLOCKING = """\
import asyncio, time
async def main():
    print("HD-TARGET-READY", flush=True)
    time.sleep(120)
asyncio.run(main())
"""
BLOCKING_LINE = 4


# where Debian keeps each tool the setups use: a fresh machine may lack them
_PACKAGES = {
    "capsh": "libcap2-bin",
    "setpriv": "util-linux",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "chroot": "coreutils",
    "mount": "mount",
}


def _need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the setups switch users, drop capabilities and namespaces")
    need_tools({tool: _PACKAGES[tool] for tool in tools})


def _hangdoctor(
    *args: str, prefix: Sequence[str] = (), timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """The real CLI, started through `prefix` (setpriv, capsh, nsenter)."""
    argv = [sys.executable, "-m", "hangdoctor", *args]
    if prefix and prefix[0] == "capsh":
        argv = ["-c", shlex.join(argv)]  # capsh hands the rest to a shell
    return subprocess.run(
        [*prefix, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def _stderr_lines(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    lines = proc.stderr.splitlines()
    error = next((ln for ln in lines if ln.startswith("error: ")), "")
    remedy = next((ln for ln in lines if ln.startswith("remedy: ")), "")
    assert error, proc.stderr
    return error.removeprefix("error: "), remedy.removeprefix("remedy: ")


def _block(server: ManagedServer, background: Background) -> None:
    """Send a request whose handler blocks the loop, and wait until /health stops answering."""
    background.get(f"{server.base_url}/causes/sleep?seconds={BLOCK_S}", timeout=BLOCK_S + 20)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not timed_get(server.base_url + "/health", timeout=0.3).ok:
            return
        time.sleep(0.05)
    raise AssertionError("the route never blocked the loop")


def _serve(argv_prefix: Sequence[str], *, app_dir: Path = APP_DIR) -> ManagedServer:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--app-dir", str(app_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if argv_prefix and argv_prefix[0] == "capsh":
        argv = [*argv_prefix, "-c", "exec " + shlex.join(argv)]  # capsh hands it to a shell
    else:
        argv = [*argv_prefix, *argv]
    return ManagedServer(
        argv,
        base_url=f"http://127.0.0.1:{port}",
        cwd="/",
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        ready_timeout=60.0,
    )


@pytest.fixture
def server() -> Iterator[Callable[..., ManagedServer]]:
    """Factory: a newsroom server started through a prefix; stopped by PID at teardown."""
    started: list[ManagedServer] = []

    def start(prefix: Sequence[str] = (), app_dir: Path = APP_DIR) -> ManagedServer:
        srv = _serve(prefix, app_dir=app_dir)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop(grace=1.0)


@pytest.fixture
def static_target(python_target: Callable[..., Any]) -> Callable[[Sequence[str]], int]:
    """Factory: BLOCKING under Debian's static python3, run through a prefix (e.g. as nobody)."""
    if not os.access(STATIC_PYTHON, os.X_OK):
        pytest.skip(f"{STATIC_PYTHON} is not installed")

    def start(prefix: Sequence[str]) -> int:
        # setpriv execs: the pid is the Python process itself
        return int(python_target(argv=[*prefix, STATIC_PYTHON, "-c", BLOCKING]).pid)

    return start


# -- a second user -------------------------------------------------------------------------


def test_hangdoctor_as_another_user_is_told_whose_process_it_is(
    server: Callable[..., ManagedServer],
) -> None:
    """GIVEN root's server WHEN uid 65534 diagnoses it THEN exit 2: whose it is, and sudo."""
    _need("setpriv")
    srv = server()
    proc = _hangdoctor("diagnose", "--pid", str(srv.pid), prefix=AS_NOBODY)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _stderr_lines(proc)
    assert message == (
        f"Process {srv.pid} (python) belongs to user root (uid 0) and you are user nobody "
        f"(uid {NOBODY}), and without CAP_SYS_PTRACE ptrace may only attach to your own "
        "processes."
    )
    sudo = f"Run hangdoctor as root: `sudo $(command -v hangdoctor) diagnose --pid {srv.pid}`."
    if ptrace_facts(srv.pid).in_container:
        # inside a container sudo may not exist and capabilities.add does not reach non-root
        assert remedy.startswith(sudo + " In a container running as non-root, ")
        assert "`capabilities.add: [SYS_PTRACE]` gives this user nothing" in remedy
    else:
        assert remedy == sudo


def test_root_diagnoses_another_users_server(
    server: Callable[..., ManagedServer], background: Background
) -> None:
    """GIVEN a server run as uid 65534 WHEN root diagnoses it THEN blocked at the user's line."""
    _need("setpriv")
    srv = server(AS_NOBODY)
    (python,) = [c for c in children(srv.pid) if c.is_python] or [None]
    pid = python.pid if python is not None else srv.pid  # setpriv execs: usually srv.pid
    assert os.stat(f"/proc/{pid}").st_uid == NOBODY
    _block(srv, background)
    proc = _hangdoctor("diagnose", "--pid", str(pid), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    finding = next(f for f in out["findings"] if f["code"] == "HD201")
    assert finding["file"].endswith(SLEEP.file)
    assert finding["line"] == SLEEP.line


# -- root without CAP_SYS_PTRACE (Docker's default) ----------------------------------------


def test_without_cap_sys_ptrace_permission_comes_before_is_it_python(
    static_target: Callable[[Sequence[str]], int],
) -> None:
    """GIVEN uid 65534's Python WHEN root without CAP_SYS_PTRACE diagnoses it THEN the capability.

    Its /proc/PID/exe is hidden, and Debian's python3 maps no libpython: this once read as
    "runs `python3`, not a Python interpreter".
    """
    _need("capsh", "setpriv")
    pid = static_target(AS_NOBODY)
    proc = _hangdoctor("diagnose", "--pid", str(pid), prefix=NO_PTRACE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _stderr_lines(proc)
    assert "not a Python interpreter" not in proc.stderr
    assert message == (
        f"py-spy cannot read process {pid} (python3) because it belongs to user nobody "
        f"(uid {NOBODY}), not to user root (uid 0), and hangdoctor runs without the "
        "CAP_SYS_PTRACE capability, which is missing from its bounding set (a container's "
        "default), so not even root or sudo has it here."
    )
    for recipe in ("docker run --cap-add SYS_PTRACE", "cap_add: [SYS_PTRACE]", "--profile=general"):
        assert recipe in remedy
    assert "(only for a container that runs as root)" in remedy
    same_user = (
        f"`setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
        f"$(command -v hangdoctor) diagnose --pid {pid}`"
    )
    assert same_user in remedy


def test_the_same_user_remedy_works_without_the_capability(
    static_target: Callable[[Sequence[str]], int],
) -> None:
    """GIVEN the capsh setup WHEN run as the target's user (the remedy) THEN it reads the target."""
    _need("capsh", "setpriv")
    pid = static_target(AS_NOBODY)
    as_owner = shlex.join([*AS_NOBODY, sys.executable, "-m", "hangdoctor"])
    proc = subprocess.run(
        [*NO_PTRACE, "-c", f"{as_owner} diagnose --pid {pid} --format json"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd="/",
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "blocked"
    (finding,) = out["findings"]  # `<string>` has no source line to name the call by
    assert (finding["file"], finding["line"], finding["function"]) == (
        "<string>",
        BLOCKING_LINE,
        "main",
    )


def test_without_cap_sys_ptrace_a_fuller_root_is_refused_as_such(
    server: Callable[..., ManagedServer],
) -> None:
    """GIVEN root's server with every capability WHEN root without CAP_SYS_PTRACE diagnoses it
    THEN exit 2: the kernel wants the target's capabilities to be a subset of the tracer's."""
    _need("capsh")
    srv = server()
    proc = _hangdoctor("diagnose", "--pid", str(srv.pid), prefix=NO_PTRACE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message, remedy = _stderr_lines(proc)
    assert message == (
        f"Process {srv.pid} (python) holds capabilities hangdoctor lacks, and without "
        "CAP_SYS_PTRACE the kernel lets a process read only processes whose capabilities are "
        "a subset of its own (a server started with full root rights, read from a shell that "
        "dropped some)."
    )
    assert f"`sudo $(command -v hangdoctor) diagnose --pid {srv.pid}`" in remedy
    assert "(`docker exec`, `kubectl exec`)" in remedy


def test_without_cap_sys_ptrace_root_reads_a_server_with_the_same_capabilities(
    server: Callable[..., ManagedServer], background: Background
) -> None:
    """GIVEN a root server that also lacks CAP_SYS_PTRACE (both in one container)
    WHEN root without the capability diagnoses it THEN same uid and same set suffice.

    That is `docker exec CONTAINER hangdoctor diagnose` with Docker's default set.
    """
    _need("capsh")
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    if scope.exists() and scope.read_text().strip() != "0":
        pytest.skip(f"kernel.yama.ptrace_scope={scope.read_text().strip()}: needs the capability")
    srv = server(NO_PTRACE)
    _block(srv, background)
    proc = _hangdoctor("diagnose", "--pid", str(srv.pid), "--format", "json", prefix=NO_PTRACE)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    finding = next(f for f in out["findings"] if f["code"] == "HD201")
    assert (finding["line"], finding["pid"]) == (SLEEP.line, srv.pid)


# -- a server in its own PID and mount namespace, chrooted -----------------------------------


@pytest.fixture
def namespaced(
    tmp_path: Path, server: Callable[..., ManagedServer]
) -> Iterator[tuple[ManagedServer, int]]:
    """The newsroom app copied to ROOT/srv/app, served from ROOT (a chroot, cwd /) in new
    PID and mount namespaces. Yields (the server, the host pid of its uvicorn)."""
    _need("unshare", "chroot", "nsenter")
    root = tmp_path / "root"
    checkout = str(ROOT).lstrip("/")
    for sub in ("usr", "etc", "dev", "proc", "tmp", "root/.pyenv", checkout, "srv"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if Path(f"/{link}").is_symlink():
            (root / link).symlink_to(os.readlink(f"/{link}"))
        elif Path(f"/{link}").is_dir():
            pytest.skip(f"/{link} is a directory here; the light root expects a merged /usr")
    shutil.copytree(APP_DIR, root / "srv" / "app", ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "enter-root.sh"
    script.write_text(textwrap.dedent(ENTER_ROOT).format(checkout=checkout), encoding="utf-8")
    prefix = ["unshare", "--pid", "--mount", "--fork", "--kill-child", "sh", str(script), str(root)]
    srv = server(prefix, app_dir=Path("/srv/app"))
    (uvicorn,) = [c for c in children(srv.pid) if c.is_python]
    with open(f"/proc/{uvicorn.pid}/status", encoding="utf-8") as fh:
        nspid = next(ln for ln in fh if ln.startswith("NSpid:")).split()
    assert nspid[-1] == "1", nspid  # the server is PID 1 of its own namespace
    assert os.readlink(f"/proc/{uvicorn.pid}/root") == str(root)
    yield srv, uvicorn.pid


def test_a_chrooted_server_in_its_own_namespaces_from_the_host(
    namespaced: tuple[ManagedServer, int], background: Background
) -> None:
    """GIVEN a chrooted server in its own namespaces WHEN diagnosed from the host
    THEN the line, as an absolute path of its root, its source, and host thread ids."""
    srv, pid = namespaced
    _block(srv, background)
    proc = _hangdoctor("diagnose", "--pid", str(pid), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    finding = next(f for f in out["findings"] if f["code"] == "HD201")
    assert finding["file"] == f"/srv/app/{SLEEP.file}"
    assert finding["line"] == SLEEP.line
    assert finding["source"] and "time.sleep(seconds)" in finding["source"]
    assert finding["pid"] == pid
    assert finding["tid"] == pid  # the host's number of its main thread, not the namespace's 1
    assert finding["cwd"] == "/"  # the server's own view, not the host path of its root

    _block(srv, background)
    text = _hangdoctor("diagnose", "--pid", str(pid))
    assert text.returncode == 1, text.stderr
    assert f"/srv/app/{SLEEP.file}:{SLEEP.line}" in text.stdout
    assert f" srv/app/{SLEEP.file}" not in text.stdout


def test_a_chrooted_server_in_its_own_namespaces_from_inside(
    namespaced: tuple[ManagedServer, int], background: Background
) -> None:
    """GIVEN the same server WHEN hangdoctor runs in its namespaces and root (kubectl exec)
    THEN it finds the server by itself, as PID 1, and names the line with its leading slash."""
    srv, pid = namespaced
    inside = ["nsenter", f"--target={pid}", "--pid", "--mount", "--root", "--wd=/"]
    _block(srv, background)
    proc = _hangdoctor("diagnose", "--format", "json", prefix=inside)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["pids"] == [1]
    finding = next(f for f in out["findings"] if f["code"] == "HD201")
    assert (finding["file"], finding["line"]) == (f"/srv/app/{SLEEP.file}", SLEEP.line)

    _block(srv, background)
    text = _hangdoctor("diagnose", "--pid", "1", prefix=inside)
    assert text.returncode == 1, text.stderr
    assert f"/srv/app/{SLEEP.file}:{SLEEP.line}" in text.stdout
    assert f" srv/app/{SLEEP.file}" not in text.stdout  # cwd / once cut the leading slash
