"""A loop that keeps running short callbacks under a `LoopWatchdog` that logs: for CPU limits.

`python starved_loop.py SECONDS` prints `ready` once its watchdog runs, keeps the
loop answering small steps of work for SECONDS of wall time (as a server under
steady requests does: always runnable, never stuck in one place), then prints
one JSON line: the stall records and how many stalls were only a loop starved
of CPU. Warnings of the `hangdoctor` logger go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from hangdoctor.runtime import LoopWatchdog


async def main(seconds: float) -> None:
    async with LoopWatchdog(0.2) as dog:
        print("ready", flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(2000))  # a little work per step, as a request handler does
            await asyncio.sleep(0)
    records = [r.to_dict() for r in dog.records]
    print(json.dumps({"records": records, "cpu_starved": dog.cpu_starved}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    asyncio.run(main(float(sys.argv[1])))
