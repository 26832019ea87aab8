# ruff: noqa
"""HD206: waiting on threading primitives and thread queues in async code."""

import asyncio
import queue
import threading

jobs_lock = threading.Lock()
ready = threading.Event()
work: queue.Queue[int] = queue.Queue()


class Worker(threading.Thread):
    pass


async def waits() -> None:
    with jobs_lock:  # error: HD206
        pass
    jobs_lock.acquire()  # error: HD206
    ready.wait(5)  # error: HD206
    work.get()  # error: HD206
    t = threading.Thread(target=print)
    t.join()  # error: HD206
    Worker().join()  # error: HD206


class Holder:
    def __init__(self) -> None:
        self._lock = threading.RLock()

    async def locked(self) -> None:
        with self._lock:  # error: HD206
            pass


async def unknown(lock: object) -> None:
    lock.acquire()  # error: HD206


async def fine(lock: asyncio.Lock, other: object) -> None:
    async with lock:
        pass
    await lock.acquire()
    jobs_lock.acquire(blocking=False)
    jobs_lock.acquire(False)
    work.get(block=False)
    work.get_nowait()
    ready.wait(timeout=0)
    ready.is_set()
    await asyncio.wait_for(other.acquire(), 1)  # a coroutine handed on
    ",".join(["a", "b"])
    aq: asyncio.Queue[int] = asyncio.Queue()
    await aq.get()
    aq.get_nowait()
    await asyncio.to_thread(ready.wait)
