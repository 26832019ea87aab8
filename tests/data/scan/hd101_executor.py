# ruff: noqa
"""HD101: an executor shut down (waiting) on the event loop."""

import asyncio
import concurrent.futures as cf
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

POOL = ThreadPoolExecutor(max_workers=2)


def work() -> int:
    return 1


async def with_block() -> int:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=2) as ex:  # error: HD101
        return await loop.run_in_executor(ex, work)


async def with_module_alias() -> None:
    with cf.ProcessPoolExecutor() as pool:  # error: HD101
        pool.submit(work)


async def with_existing_executor() -> None:
    ex = ProcessPoolExecutor()
    with ex:  # error: HD101
        ex.submit(work)


async def explicit_shutdown() -> None:
    ex = ThreadPoolExecutor()
    ex.submit(work)
    ex.shutdown()  # error: HD101
    POOL.shutdown(wait=True)  # error: HD101


async def fine_shutdowns() -> None:
    ex = ThreadPoolExecutor()
    ex.shutdown(wait=False)
    ex.shutdown(False)
    ex.shutdown(wait=False, cancel_futures=True)


class Service:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor()

    async def close(self) -> None:
        self._pool.shutdown()  # error: HD101

    def close_sync(self) -> None:
        self._pool.shutdown()  # sync code: runs wherever its caller runs


def sync_with_block() -> None:
    with ThreadPoolExecutor() as ex:  # sync function, not called from async code here
        ex.submit(work)


async def outer() -> None:
    def helper() -> None:  # a nested sync function is not async code
        with ThreadPoolExecutor() as ex:
            ex.submit(work)

    await asyncio.to_thread(helper)  # handed to a thread: fine


async def unknown_shutdown(server: object, sock: object) -> None:
    server.shutdown()  # unknown type: not an executor
    sock.shutdown(2)
