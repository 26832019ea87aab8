"""Process discovery from /proc, on real processes started by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.capture.procs import (
    children,
    expand_targets,
    find_servers,
    listening_pids,
    match_processes,
    process_info,
    resolve_targets,
)
from hangdoctor.errors import NoTargetError, ProcessGoneError

SRC = str(Path(__file__).resolve().parents[2] / "src")
READY = "HD-TARGET-READY"

# A parent that starts two Python children and one `sleep`, all carrying the token.
FAMILY = f"""
import shutil, subprocess, sys, time
token = sys.argv[1]
kids = [
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", token])
    for _ in range(2)
]
# the token as argv[0]: `sleep` refuses an extra argument, exits and writes to our stdout
kids.append(subprocess.Popen([f"sleep-{{token}}", "120"], executable=shutil.which("sleep")))
print("KIDS", *[k.pid for k in kids], flush=True)
print({READY!r}, flush=True)
time.sleep(120)
"""

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _kid_pids(output: str) -> list[int]:
    line = next(ln for ln in output.splitlines() if ln.startswith("KIDS "))
    return [int(x) for x in line.split()[1:]]


def _token() -> str:
    return f"hd-token-{uuid.uuid4().hex}"


def test_process_info_of_ourselves() -> None:
    """process_info reads pid, ppid, argv, exe, uid and state of a live process."""
    me = process_info(os.getpid())
    assert me.pid == os.getpid()
    assert me.ppid == os.getppid()
    assert me.uid == os.geteuid()
    assert me.state == "R"
    assert me.exe is not None and os.path.samefile(me.exe, sys.executable)
    assert me.is_python
    with open("/proc/self/cmdline", "rb") as fh:
        assert me.argv == tuple(fh.read().decode().split("\0")[:-1])


def test_process_info_of_a_dead_pid(dead_pid: int) -> None:
    """A pid nothing runs under raises ProcessGoneError with the remedy to list servers."""
    with pytest.raises(ProcessGoneError) as err:
        process_info(dead_pid)
    assert err.value.message == f"No process with PID {dead_pid} is running."
    assert "hangdoctor diagnose" in err.value.remedy


def test_sleep_is_not_python(python_target: Callable[..., Any]) -> None:
    """A non-Python program (`sleep`) is not a Python process."""
    sleep = python_target(argv=["sleep", "120"], count=0)
    info = process_info(sleep.pid)
    assert info.program == "sleep"
    assert not info.is_python


def test_children_and_expand_targets(python_target: Callable[..., Any]) -> None:
    """expand_targets gives the parent first, then its Python children by pid, not `sleep`."""
    token = _token()
    parent = python_target(FAMILY, token)
    py1, py2, sleeper = _kid_pids(parent.output)

    descendants = [c.pid for c in children(parent.pid)]
    assert descendants == sorted([py1, py2, sleeper])

    targets = expand_targets(parent.pid)
    assert [t.pid for t in targets] == [parent.pid, *sorted([py1, py2])]
    assert all(t.is_python for t in targets)


def test_match_processes_finds_the_top_of_the_family(python_target: Callable[..., Any]) -> None:
    """Every member has the token in argv, but only the family's top process is listed."""
    token = _token()
    parent = python_target(FAMILY, token)
    assert [p.pid for p in match_processes(token)] == [parent.pid]


def test_match_processes_never_lists_itself_or_its_ancestors() -> None:
    """A process matching on a word of its own (and its shell's) command line finds nothing."""
    token = _token()
    code = (
        "import sys; from hangdoctor.capture.procs import match_processes; "
        "print([p.pid for p in match_processes(sys.argv[1])])"
    )
    shell = f"{sys.executable} -c '{code}' {token}; echo {token} >/dev/null"
    proc = subprocess.run(
        ["sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
        check=True,
    )
    assert proc.stdout.strip() == "[]"


def test_resolve_targets_by_pid_and_match(python_target: Callable[..., Any]) -> None:
    """--pid and a unique --match both expand to the family; the pid must exist."""
    token = _token()
    parent = python_target(FAMILY, token)
    by_pid = [t.pid for t in resolve_targets(parent.pid, None)]
    by_match = [t.pid for t in resolve_targets(None, token)]
    assert by_pid == by_match == [t.pid for t in expand_targets(parent.pid)]
    assert len(by_pid) == 3


def test_resolve_targets_errors(python_target: Callable[..., Any], dead_pid: int) -> None:
    """No match, several matches and a dead --pid each give one sentence and a remedy."""
    token = _token()
    with pytest.raises(NoTargetError) as none:
        resolve_targets(None, token)
    assert token in none.value.message
    assert "--pid" in none.value.remedy

    code = f"import time; print({READY!r}, flush=True); time.sleep(120)"
    first = python_target(code, token)
    second = python_target(code, token)
    with pytest.raises(NoTargetError) as several:
        resolve_targets(None, token)
    assert several.value.message.startswith(f"2 processes match {token!r}")
    assert str(first.pid) in several.value.message
    assert str(second.pid) in several.value.message
    assert several.value.remedy == "Pass --pid PID to choose one."

    with pytest.raises(ProcessGoneError):
        resolve_targets(dead_pid, None)


def test_listening_pids_of_a_plain_listener(python_target: Callable[..., Any]) -> None:
    """The process holding a LISTEN socket on a port is found from /proc/net/tcp."""
    code = f"""
    import socket, time
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    print("PORT", s.getsockname()[1], flush=True)
    print({READY!r}, flush=True)
    time.sleep(120)
    """
    target = python_target(code)
    port = int(next(ln for ln in target.output.splitlines() if ln.startswith("PORT")).split()[1])
    assert listening_pids(port) == [target.pid]


def test_listening_pids_of_a_closed_port() -> None:
    """A port nothing listens on has no pids."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening
        assert listening_pids(port) == []


# Re-executes itself with a gunicorn-style process title as argv[0], then forks a "worker".
GUNICORN_LIKE = f"""
import os, subprocess, sys, time
python, token = sys.argv[1], sys.argv[2]
if len(sys.argv) == 4:  # first run: argv[3] is this very code
    os.execv(python, [f"gunicorn: master [{{token}}]", "-c", sys.argv[3], python, token])
worker = subprocess.Popen(
    [f"gunicorn: worker [{{token}}]", "-c", "import time; time.sleep(120)"], executable=python
)
print("KIDS", worker.pid, flush=True)
print({READY!r}, flush=True)
time.sleep(120)
"""


def test_find_servers_recognises_server_command_lines(
    python_target: Callable[..., Any], tmp_path: Path
) -> None:
    """Console scripts and gunicorn process titles count; a mere mention of uvicorn does not."""
    token = _token()
    script = tmp_path / "uvicorn"
    script.write_text(f"import time\nprint({READY!r}, flush=True)\ntime.sleep(120)\n")
    console = python_target(argv=[sys.executable, str(script), f"{token}:app"])
    master = python_target(
        argv=[sys.executable, "-c", GUNICORN_LIKE, sys.executable, token, GUNICORN_LIKE]
    )
    (worker,) = _kid_pids(master.output)
    code = f"import time; print({READY!r}, flush=True); time.sleep(120)"
    decoy = python_target(code, token, "uvicorn", "-m", "uvicorn")

    assert process_info(master.pid).argv[0] == f"gunicorn: master [{token}]"
    servers = [s.pid for s in find_servers()]
    assert console.pid in servers
    assert master.pid in servers
    assert worker not in servers
    assert decoy.pid not in servers
    assert [t.pid for t in expand_targets(master.pid)] == [master.pid, worker]


@pytest.mark.e2e
def test_find_servers_finds_a_uvicorn_master_not_its_workers(
    python_target: Callable[..., Any], tmp_path: Path
) -> None:
    """A real `python -m uvicorn --workers 2` is found once; its workers come with it."""
    (tmp_path / "hd_tiny_app.py").write_text(ASGI_APP, encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        argv = [sys.executable, "-m", "uvicorn", "--fd", str(sock.fileno()), "--workers", "2"]
        argv += ["--app-dir", str(tmp_path), "hd_tiny_app:app"]
        server = python_target(
            argv=argv, marker="Application startup complete", count=2, pass_fds=[sock.fileno()]
        )
    family = expand_targets(server.pid)
    family_pids = {t.pid for t in family}
    workers = [
        int(x.split("[")[1].split("]")[0])
        for x in server.output.splitlines()
        if "Started server process" in x
    ]
    assert len(workers) == 2
    assert family[0].pid == server.pid
    assert set(workers) <= family_pids

    servers = [s.pid for s in find_servers()]
    assert server.pid in servers
    assert not set(workers) & set(servers)

    listeners = listening_pids(port)
    assert listeners
    assert set(listeners) <= family_pids

    # the CLI's no-argument rule: our server alone, or a list naming it among others
    try:
        resolved = resolve_targets(None, None)
    except NoTargetError as exc:
        assert str(server.pid) in exc.message
        assert exc.remedy == "Pass --pid PID to choose one."
    else:
        assert resolved[0].pid == server.pid


# A shell running one Python program (the service) and, like `sh -c "hangdoctor ..."`,
# a Python process that looks at the shell with a Python child of its own (its py-spy).
SHELL_WITH_PROBE = """
"$0" -c 'import time; time.sleep(120)' hd-service &
"$0" -c "$1" $$ &
wait
"""
PROBE = f"""
import os, subprocess, sys, time
from hangdoctor.capture.procs import children, expand_targets, process_info
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not (
    process_info(kid.pid).is_python
    and any("hd-service" in c.argv and c.is_python for c in children(int(sys.argv[1])))
):
    time.sleep(0.02)  # both have exec'd Python: a forked shell is no service yet
targets = [t.pid for t in expand_targets(int(sys.argv[1]))]
print("PROBE", os.getpid(), kid.pid, *targets, flush=True)
print({READY!r}, flush=True)
time.sleep(120)
"""


def test_expand_targets_leaves_hangdoctor_out(python_target: Callable[..., Any]) -> None:
    """--pid of the shell that runs hangdoctor: the service only, not hangdoctor or its child.

    Once the shell's targets were hangdoctor's own healthy stacks: an all-clear.
    """
    shell = python_target(
        argv=["sh", "-c", SHELL_WITH_PROBE, sys.executable, PROBE],
        marker=READY,
    )
    line = next(ln for ln in shell.output.splitlines() if ln.startswith("PROBE "))
    probe, probe_kid, *targets = (int(x) for x in line.split()[1:])
    service = [c.pid for c in children(shell.pid) if "hd-service" in c.argv]
    assert len(service) == 1
    assert targets == service  # not the shell (no Python stack), not the probe, not its child
    assert probe not in targets and probe_kid not in targets


def test_several_unrelated_programs_under_a_shell_are_listed(
    python_target: Callable[..., Any],
) -> None:
    """--pid of a shell (or PID 1) running two unrelated Python programs: list them, ask which."""
    token = _token()
    code = f"import time; print({READY!r}, flush=True); time.sleep(120)"
    script = f'"$0" -c "$1" {token}-one & "$0" -c "$1" {token}-two & wait'
    shell = python_target(argv=["sh", "-c", script, sys.executable, code], count=2)
    with pytest.raises(NoTargetError) as err:
        resolve_targets(shell.pid, None)
    kids = sorted(c.pid for c in children(shell.pid) if c.is_python)
    assert len(kids) == 2
    assert err.value.message.startswith(
        f"2 unrelated Python programs run under PID {shell.pid} "
        f"({process_info(shell.pid).program}): {kids[0]} `"
    )
    assert f"{token}-one" in err.value.message and f"{token}-two" in err.value.message
    assert err.value.remedy.startswith("Pass --pid PID of the one to diagnose")


def test_the_listing_shows_what_tells_servers_apart(python_target: Callable[..., Any]) -> None:
    """Long command lines differing only at the end (`--port`): each listed with its port."""
    token = _token()
    code = f"import time; print({READY!r}, flush=True); time.sleep(120)"
    long_dir = "/srv/" + "/".join(["a-long-application-directory"] * 4)
    common = ["-c", code, token, "--app-dir", long_dir, "--host", "127.0.0.1"]
    first = python_target(argv=[sys.executable, *common, "--port", "8001", "--no-access-log"])
    second = python_target(argv=[sys.executable, *common, "--port", "8002", "--no-access-log"])
    with pytest.raises(NoTargetError) as err:
        resolve_targets(None, token)
    python = Path(sys.executable).name
    for target, port in ((first, 8001), (second, 8002)):
        shown = f"{target.pid} `{python} ... --port {port} --no-access-log`"
        assert shown in err.value.message
