"""A load generator in its own process: keep-alive GETs or SSE open/read/close cycles.

Run: python bench/_load.py URL_PATH --port P --connections C --seconds S [--stream]
Prints one JSON object: {"requests": N, "seconds": S, "errors": E}. Only ever
connects to 127.0.0.1; stops by itself after S seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _get_loop(port: int, path: str, deadline: float, counts: list[int]) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()


async def _stream_loop(port: int, path: str, deadline: float, counts: list[int]) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request.encode())
            await reader.readuntil(b"\r\n\r\n")  # headers
            await reader.readuntil(b"\n\n")  # the first event (chunked framing around it)
            counts[0] += 1
        finally:
            writer.close()  # the client drops the stream, as browsers do


async def _main(args: argparse.Namespace) -> dict[str, float]:
    deadline = time.monotonic() + args.seconds
    counts = [0]
    one = _stream_loop if args.stream else _get_loop
    started = time.monotonic()
    results = await asyncio.gather(
        *(one(args.port, args.path, deadline, counts) for _ in range(args.connections)),
        return_exceptions=True,
    )
    errors = sum(isinstance(r, BaseException) for r in results)
    return {"requests": counts[0], "seconds": time.monotonic() - started, "errors": errors}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true")
    print(json.dumps(asyncio.run(_main(parser.parse_args()))))
