"""An HTTP server on asyncio's streams, standard library only: it runs in a bare venv.

`python plain_server.py PORT` serves
- `/health`: 200 "ok";
- `/imports`: JSON saying where this process would import hangdoctor's own
  dependencies from (rich, click, libcst; null: nowhere), where `hangdoctor`
  came from, and whether `hangdoctor watch`'s hook wrapped asyncio's loop start-up;
- `/sleep`: blocks the loop for `SLEEP_S` seconds on a line that carries
  secret-looking arguments, so the stall record quotes them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys

SLEEP_S = 0.8
SLEEP = f"import time; time.sleep({SLEEP_S})"
PY = sys.executable
run = subprocess.run
SECRETS = ("sk-live-0123", "eyJ0.sig")  # on the /sleep line; never in a stall record


def _imports() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in ("rich", "click", "libcst"):
        spec = importlib.util.find_spec(name)
        found[name] = None if spec is None else spec.origin
    hangdoctor = sys.modules.get("hangdoctor")
    found["hangdoctor"] = getattr(hangdoctor, "__file__", None)
    found["hook"] = asyncio.events._set_running_loop.__name__
    return found


def _blocking_call() -> None:
    run([PY, "-c", SLEEP, "--api-token=sk-live-0123", "Authorization: Bearer eyJ0.sig"])


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass  # the headers: nothing here needs them
    path = request.split(b" ")[1].decode("ascii") if request.count(b" ") >= 2 else "/"
    status, body = "200 OK", b"ok"
    if path == "/imports":
        body = json.dumps(_imports()).encode("utf-8")
    elif path == "/sleep":
        _blocking_call()
    elif path != "/health":
        status, body = "404 Not Found", b"not found"
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode("ascii") + body)
    await writer.drain()
    writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
