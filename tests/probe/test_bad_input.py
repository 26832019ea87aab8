"""A service the probe cannot measure: one sentence and the remedy, exit 2, on time.

Every case runs the real CLI against a real local server written to fail in
one way: nothing listening, a full backlog, a socket that never answers,
404/500 and JSON where a stream was expected, a stream that never sends its
headers, TLS trouble, and a server that dies in the middle of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, ServerFactory, run_hangdoctor
from tests.probe._servers import SilentSocket, TinyServer, make_certificate

from hangdoctor.probe.server import free_port


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, `error:` + `remedy:` on stderr, no traceback, each needle in the message."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: ") or "\nerror: " in proc.stderr, proc.stderr
    assert "remedy: " in proc.stderr, proc.stderr
    for needle in needles:
        assert needle.lower() in proc.stderr.lower(), proc.stderr


def probe_cli(url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return run_hangdoctor("probe", url, "--duration", "3", *args, timeout=timeout)


@pytest.fixture
def tiny() -> Iterator[TinyServer]:
    """A local server with broken routes: /boom (500), /json (not SSE), /silent (no headers)."""
    with TinyServer() as server:
        yield server


@pytest.fixture
def silent() -> Iterator[SilentSocket]:
    """A listening socket that never answers."""
    sock = SilentSocket()
    yield sock
    sock.close()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ftp://127.0.0.1:8000", "http"),
        ("http://", "http"),
        ("http://127.0.0.1:99999", "port"),
        ("http://user:secret@127.0.0.1:8000", "header"),
        ("http://[::1", "not a valid URL"),
        ("http://[zz]:8000", "not a valid URL"),
    ],
)
def test_bad_url(url: str, needle: str) -> None:
    """A URL the probe cannot use is refused before any traffic."""
    assert_clean_failure(probe_cli(url, "--stream", "/s"), needle)


def test_url_path_and_health_together() -> None:
    """A URL with a path plus --health is ambiguous and refused, not guessed."""
    out = probe_cli("http://127.0.0.1:8000/health", "--health", "/health", "--stream", "/s")
    assert_clean_failure(out, "--health")


def test_stream_on_another_host() -> None:
    """Traffic goes only to the URL's host: a stream URL elsewhere is refused."""
    out = probe_cli("http://127.0.0.1:8000", "--stream", "http://127.0.0.2:8000/s")
    assert_clean_failure(out, "127.0.0.2", "only")


def test_connection_refused() -> None:
    """Nothing listening on the port: connection refused, start the server."""
    url = f"http://127.0.0.1:{free_port()}"
    assert_clean_failure(probe_cli(url, "--stream", "/s"), "connection refused", "start the server")


def test_unreachable() -> None:
    """A host that never completes the TCP handshake: unreachable, within the deadline."""
    silent = SilentSocket(backlog=0)
    try:
        silent.fill_backlog()
        started = time.monotonic()
        out = probe_cli(silent.url, "--stream", "/s", "--health-timeout", "1")
    finally:
        silent.close()
    assert_clean_failure(out, "unreachable")
    assert time.monotonic() - started < 20


def test_never_sends_headers(silent: SilentSocket) -> None:
    """A server that accepts and never answers is named so, after the health deadline."""
    out = probe_cli(silent.url, "--stream", "/s", "--health-timeout", "1")
    assert_clean_failure(out, "no response", "hangdoctor diagnose")


def test_https_to_a_socket_that_never_answers(silent: SilentSocket) -> None:
    """https:// to a port that accepts TCP and never reads: the TLS handshake, not the network."""
    url = silent.url.replace("http://", "https://")
    out = probe_cli(url, "--stream", "/s", "--health-timeout", "1")
    assert_clean_failure(out, "accepted the TCP connection", "TLS handshake within 1 s")
    assert "unreachable" not in out.stderr and "firewall" not in out.stderr


def test_https_to_a_host_that_does_not_answer() -> None:
    """https:// to a host that never completes the TCP handshake is still named unreachable."""
    silent = SilentSocket(backlog=0)
    try:
        silent.fill_backlog()
        out = probe_cli(silent.url.replace("http://", "https://"), "--stream", "/s",
                        "--health-timeout", "1")  # fmt: skip
    finally:
        silent.close()
    assert_clean_failure(out, "unreachable")


def test_health_path_404(tiny: TinyServer) -> None:
    """A health path that does not exist is reported with its status and the option to fix."""
    out = probe_cli(tiny.url, "--health", "/nope", "--stream", "/sse")
    assert_clean_failure(out, "HTTP 404", "--health")


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        ("/missing", ("HTTP 404", "--stream")),
        ("/boom", ("HTTP 500", "--stream")),
        ("/json", ("application/json", "not a server-sent events stream")),
        ("/silent", ("sent no response headers",)),
    ],
)
def test_bad_stream_path(tiny: TinyServer, path: str, needles: tuple[str, ...]) -> None:
    """A stream path that fails, is not SSE or never answers stops the run early with exit 2."""
    started = time.monotonic()
    out = run_hangdoctor(
        "probe", tiny.url, "--stream", path, "--duration", "20", "--health-timeout", "1"
    )
    assert_clean_failure(out, path, *needles)
    assert time.monotonic() - started < 15  # stopped early, not at the end of the 20 s
    assert "/health" in tiny.hits


def test_https_to_a_plain_http_server(tiny: TinyServer) -> None:
    """https:// to a server that speaks plain HTTP: the TLS handshake fails, use http://."""
    url = tiny.url.replace("http://", "https://")
    assert_clean_failure(probe_cli(url, "--stream", "/sse"), "TLS", "http://")


def test_tls_untrusted_certificate_and_insecure(tmp_path: Path) -> None:
    """A self-signed certificate is refused with the --insecure remedy; with it the probe runs."""
    certificate = make_certificate(tmp_path)
    if certificate is None:
        pytest.skip("needs the openssl CLI")
    with TinyServer(certificate=certificate) as server:
        refused = probe_cli(server.url, "--stream", "/sse")
        assert_clean_failure(refused, "certificate", "--insecure")
        ok = run_hangdoctor(
            "probe", server.url, "--stream", "/sse", "--insecure", "--duration", "1.5",
            "--clients", "2", "--format", "json",
        )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert '"verdict": "pass"' in ok.stdout
    assert server.hits.count("/sse") >= 2


def test_dead_pid(tiny: TinyServer) -> None:
    """--pid of a process that is not running fails before the run, not after."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    out = probe_cli(tiny.url, "--stream", "/sse", "--pid", str(proc.pid))
    assert_clean_failure(out, str(proc.pid))


def test_report_directory_missing(tiny: TinyServer, tmp_path: Path) -> None:
    """A report path in a directory that does not exist fails before the run."""
    report = tmp_path / "no" / "such" / "report.html"
    out = probe_cli(tiny.url, "--stream", "/sse", "--report", str(report))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert not report.exists()


@pytest.mark.e2e
def test_server_dies_mid_run(newsroom: ServerFactory) -> None:
    """The server is killed during the run: the probe stops early and says so."""
    server = newsroom(app="api.main:fixed_app")
    env = dict(os.environ, NO_COLOR="1")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hangdoctor", "probe", server.base_url, "--stream", "/news/stream",
         "--duration", "30", "--clients", "5"],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2.0)
        server.stop(grace=1.0)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_clean_failure(out, "stopped accepting connections", "log")
    assert time.monotonic() - started < 20  # well before the 30 s duration


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "16k") -> Iterator[Path]:
    """A real filesystem of `size` bytes (too small for a report): mounted as root, unmounted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_report_on_a_full_disk(tiny: TinyServer, tmp_path: Path, fmt: str) -> None:
    """--report on a full disk: results printed first, then one sentence, exit 2, no file left."""
    with tiny_tmpfs(tmp_path / "full") as disk:
        report = disk / "probe.html"
        out = probe_cli(
            tiny.url, "--stream", "/sse", "--clients", "2", "--format", fmt, "--report", str(report)
        )
        left = sorted(p.name for p in disk.iterdir())
    assert_clean_failure(out, f"could not be written to {report}", "no space left on device")
    assert "failed unexpectedly" not in out.stderr
    if fmt == "json":
        assert json.loads(out.stdout)["verdict"] == "pass"
    else:
        assert " PASS " in out.stdout and "report written" not in out.stdout
    assert left == []  # neither the report nor a temporary file stayed behind
