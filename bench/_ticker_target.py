"""A newsroom server with a ticker thread that measures how long the process is paused.

py-spy pauses every thread of the target while it reads a sample. The ticker
spins on `time.perf_counter()` and records every gap longer than 1 ms with its
time; the benchmark matches gaps to the moments it ran py-spy. Printed as JSON
lines on stdout when the process gets SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

GAPS: list[tuple[float, float]] = []  # (wall time at the end of the gap, gap seconds)


def _tick(stop: threading.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        now = time.perf_counter()
        if now - last > 0.001:
            GAPS.append((time.time(), now - last))
        last = now
        time.sleep(0.0002)


def main() -> None:
    import uvicorn

    app_dir, port = sys.argv[1], int(sys.argv[2])
    sys.path.insert(0, app_dir)
    stop = threading.Event()
    threading.Thread(target=_tick, args=(stop,), name="pause-ticker", daemon=True).start()

    def dump_gaps(signum: int, frame: object) -> None:
        stop.set()
        sys.stdout.write(json.dumps(GAPS) + "\n")
        sys.stdout.flush()
        raise SystemExit(0)

    signal.signal(signal.SIGUSR1, dump_gaps)
    uvicorn.run("api.main:app", host="127.0.0.1", port=port, loop="asyncio", access_log=False)


if __name__ == "__main__":
    main()
