"""Small real servers on 127.0.0.1 for the probe tests, each stopped by its owner.

`TinyServer` answers a fixed set of paths the way broken services do (404,
500, JSON where SSE was expected, headers that never come), optionally over
TLS with a throwaway self-signed certificate. `SilentSocket` accepts TCP
connections and never says anything.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from hangdoctor.probe.timeline import ProbeConfig

__all__ = ["SilentSocket", "TinyServer", "make_certificate", "quick_config"]


def quick_config(url: str, **overrides: object) -> ProbeConfig:
    """A short probe: 10 clients, 4 s, streams dropped after 0.2-1 s."""
    values: dict[str, object] = {
        "url": url,
        "streams": ("/news/stream",),
        "health": "/health",
        "clients": 10,
        "duration_s": 4.0,
        "abort_min_s": 0.2,
        "abort_max_s": 1.0,
        "seed": 7,
    }
    values.update(overrides)
    return ProbeConfig(**values)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits.append(path)
        if path == "/health":
            self.server.health_tokens.append(self.headers.get("X-Token"))
            self._send(200, "application/json", json.dumps({"status": "ok"}).encode())
        elif path == "/boom":
            self._send(500, "text/plain", b"internal error")
        elif path == "/json":
            self._send(200, "application/json", b'{"headline": "not a stream"}')
        elif path == "/silent":
            self.server.release.wait(30.0)  # never answers while the test runs
        elif path == "/sse-empty":  # a stream that ends at once, with no event
            self._send(200, "text/event-stream", b"")
        elif path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for i in range(100):
                    self.wfile.write(f"data: tick {i}\n\n".encode())
                    self.wfile.flush()
                    if self.server.release.wait(0.1):
                        break
            except OSError:
                pass  # the client dropped the stream, as it is meant to
        else:
            self._send(404, "text/plain", b"not found")

    def do_POST(self) -> None:
        """/sse-post: records the body and the X-Token header, then streams like /sse."""
        length = int(self.headers.get("Content-Length") or 0)
        self.server.posts.append((self.rfile.read(length), self.headers.get("X-Token")))
        self.path = "/sse"
        self.do_GET()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.release = threading.Event()
        self.hits: list[str] = []
        self.posts: list[tuple[bytes, str | None]] = []
        self.health_tokens: list[str | None] = []  # the X-Token header of each GET /health

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.context is not None:
            sock.settimeout(5.0)  # a client that never finishes the handshake
            try:
                sock = self.context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        return sock, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that drop connections are the point of these tests


class TinyServer:
    """A threaded HTTP(S) server in this process; `url` is its base URL."""

    def __init__(self, *, certificate: tuple[Path, Path] | None = None) -> None:
        context = None
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
        self._server = _Server(context)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self._server.hits

    @property
    def health_tokens(self) -> list[str | None]:
        return self._server.health_tokens

    @property
    def posts(self) -> list[tuple[bytes, str | None]]:
        """(body, X-Token header) of every POST."""
        return self._server.posts

    def __enter__(self) -> TinyServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10.0)


class SilentSocket:
    """A listening socket nobody reads: the kernel completes the handshake, then nothing."""

    def __init__(self, *, backlog: int = 64) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(backlog)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._fillers: list[socket.socket] = []

    def fill_backlog(self) -> None:
        """Queue connections until the next SYN is dropped: a host that does not answer."""
        for _ in range(4):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(0.5)
            try:
                c.connect(("127.0.0.1", self.port))
            except TimeoutError:
                c.close()
                return
            self._fillers.append(c)
        raise AssertionError("the backlog never filled up")

    def close(self) -> None:
        for c in self._fillers:
            c.close()
        self._sock.close()


def make_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
