"""The reference clock for bench/probe.py: a minimal client that times /health, nothing else.

It waits for one line on stdin, the wall time T0 at which the probe's health
schedule started, then sends the same request the probe sends (a new
connection, `GET PATH HTTP/1.1`, `Connection: close`, read to the end of the
body) at T0 + k * INTERVAL for every tick still ahead, until T0 + DURATION.
Blocking sockets, one process, no event loop: its own error is the floor. It
takes the same scheduling priority as the probe's health clock (real-time
where permitted), so both wake as soon as a response arrives and the
comparison measures the probe, not the machine's scheduler.
Prints one JSON line per request: [k, wall start, latency s, status or null].

Usage: python bench/_health_ref.py HOST PORT PATH INTERVAL DURATION TIMEOUT
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path


def _get(host: str, port: int, path: str, timeout: float) -> int | None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.perf_counter() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                sock.settimeout(max(0.001, deadline - time.perf_counter()))
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while length is None or len(body) < length:
                sock.settimeout(max(0.001, deadline - time.perf_counter()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return status
    except OSError:
        return None


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from hangdoctor.probe.clock import raise_priority

    raise_priority()
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    interval, duration, timeout = (float(x) for x in sys.argv[4:7])
    t0 = float(sys.stdin.readline())
    k = max(0, int((time.time() - t0) / interval) + 1)  # the first tick still ahead
    out: list[list[object]] = []
    threads = []

    def one(k: int) -> None:
        start_wall = time.time()
        start = time.perf_counter()
        status = _get(host, port, path, timeout)
        out.append([k, start_wall, time.perf_counter() - start, status])

    while k * interval < duration:
        delay = t0 + k * interval - time.time()
        if delay > 0:
            time.sleep(delay)
        # a thread per request, like the probe's task per request: a slow answer
        # must not delay the next tick
        thread = threading.Thread(target=one, args=(k,))
        thread.start()
        threads.append(thread)
        k += 1
    for thread in threads:
        thread.join(timeout + 1)
    for row in sorted(out, key=lambda r: r[0]):  # type: ignore[arg-type, return-value]
        print(json.dumps(row))


if __name__ == "__main__":
    main()
