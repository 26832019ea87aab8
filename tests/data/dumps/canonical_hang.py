"""The canonical hang, for dump fixtures: leaving `with ThreadPoolExecutor()` on the event loop.

make_fixtures.py runs `python canonical_hang.py MODE` and captures it while
the event-loop thread sits in `Executor.__exit__`, joining a worker that is
inside `time.sleep`. MODE: plain (attach py-spy or pystack), later
(faulthandler.dump_traceback_later, three dumps), usr1
(faulthandler.register(SIGUSR1)), abort (run with -X faulthandler, then SIGABRT).
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MODE = sys.argv[1] if len(sys.argv) > 1 else "plain"


def fetch_news() -> str:
    time.sleep(60)  # the slow upstream call the worker is inside
    return "news"


def arm() -> None:
    if MODE == "later":
        faulthandler.dump_traceback_later(0.5, repeat=True)
        threading.Timer(1.75, faulthandler.cancel_dump_traceback_later).start()
    elif MODE == "usr1":
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    print("joining", flush=True)


async def stream() -> None:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=2) as ex:
        fut = loop.run_in_executor(ex, fetch_news)
        await asyncio.sleep(0.2)
        fut.cancel()  # the client went away; the running job is not cancelled
        arm()
    # not reached for a minute: __exit__ joins the worker on the event-loop thread


if __name__ == "__main__":
    asyncio.run(stream())
