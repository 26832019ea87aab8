"""One route per cause hangdoctor sees in a live process.

Each route blocks the event loop (or starves the worker threads) for
`?seconds=` seconds, the way real services do by mistake. The golden captures
and the end-to-end tests check that hangdoctor points at exactly the line that
blocks (the tests list those lines in tests/data/newsroom_lines.json).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Request

router = APIRouter(prefix="/causes")

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="report")
_jobs_lock = threading.Lock()


def _upstream(request: Request) -> str:
    return str(request.app.state.upstream.url)


def build_report(seconds: float) -> str:
    time.sleep(seconds)
    return "report"


@router.get("/sleep")
async def sleep_on_loop(seconds: float = 5.0) -> dict[str, str]:
    time.sleep(seconds)
    return {"slept": str(seconds)}


@router.get("/http")
async def sync_http(request: Request, seconds: float = 5.0) -> dict[str, int]:
    url = f"{_upstream(request)}/slow?delay={seconds}"
    body = urllib.request.urlopen(url, timeout=seconds + 10).read()
    return {"bytes": len(body)}


@router.get("/socket")
async def raw_socket(request: Request, seconds: float = 5.0) -> dict[str, int]:
    port = request.app.state.upstream.port
    with socket.create_connection(("127.0.0.1", port), timeout=seconds + 10) as sock:
        sock.sendall(f"GET /slow?delay={seconds} HTTP/1.0\r\n\r\n".encode())
        data = sock.recv(65536)
    return {"bytes": len(data)}


@router.get("/subprocess")
async def run_child(seconds: float = 5.0) -> dict[str, int]:
    code = f"import time; time.sleep({seconds})"
    done = subprocess.run([sys.executable, "-c", code], check=False)
    return {"returncode": done.returncode}


@router.get("/file")
async def read_fifo(seconds: float = 5.0) -> dict[str, int]:
    # a FIFO stands in for a slow disk or network file system: open() waits for a writer
    folder = tempfile.mkdtemp(prefix="newsroom-")
    fifo = os.path.join(folder, "feed")
    os.mkfifo(fifo)

    def writer() -> None:
        time.sleep(seconds)
        with open(fifo, "w") as out:
            out.write("late data")

    threading.Thread(target=writer, name="fifo-writer", daemon=True).start()
    with open(fifo) as feed:
        data = feed.read()
    os.unlink(fifo)
    os.rmdir(folder)
    return {"bytes": len(data)}


@router.get("/lock")
async def wait_for_lock(seconds: float = 5.0) -> dict[str, bool]:
    held = threading.Event()

    def holder() -> None:
        with _jobs_lock:
            held.set()
            time.sleep(seconds)

    threading.Thread(target=holder, name="lock-holder", daemon=True).start()
    held.wait(5)
    got = _jobs_lock.acquire()
    _jobs_lock.release()
    return {"acquired": got}


@router.get("/future")
async def wait_for_future(seconds: float = 5.0) -> dict[str, str]:
    fut = _pool.submit(build_report, seconds)
    return {"report": fut.result()}


def _rank(words: list[str]) -> int:
    score = 0
    for i, word in enumerate(words):
        score += (hash(word) ^ i) % 7
    return score


@router.get("/cpu")
async def cpu_on_loop(seconds: float = 5.0) -> dict[str, int]:
    words = [f"w{i}" for i in range(20_000)]
    total = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        total += _rank(words)
    return {"total": total}


@router.get("/unknown")
async def unknown_wait(seconds: float = 5.0) -> dict[str, str]:
    select.select([], [], [], seconds)
    return {"waited": str(seconds)}


@router.get("/starve")
def slow_sync_report(seconds: float = 5.0) -> dict[str, str]:
    # a sync route: runs on one of AnyIO's 40 worker threads, not on the loop
    time.sleep(seconds)
    return {"slept": str(seconds)}


@router.get("/login")
async def slow_login(seconds: float = 5.0) -> dict[str, bool]:
    # secrets in locals: `hangdoctor diagnose --locals` shows them redacted
    password = os.environ.get("NEWSROOM_DB_PASSWORD", "hunter2-newsroom")
    api_token = "Bearer nr-0123456789abcdef"
    time.sleep(seconds)
    return {"ok": bool(password and api_token)}
