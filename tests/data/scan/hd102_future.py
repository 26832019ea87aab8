# ruff: noqa
"""HD102: waiting on a concurrent.futures.Future with a blocking call."""

import asyncio
import concurrent.futures
from concurrent.futures import ThreadPoolExecutor, as_completed, wait

pool = ThreadPoolExecutor()


def job() -> int:
    return 1


async def result_of_submit() -> int:
    fut = pool.submit(job)
    return fut.result()  # error: HD102


async def chained() -> int:
    return pool.submit(job).result()  # error: HD102


async def unknown_executor(executor: object) -> int:
    return executor.submit(job).result()  # error: HD102


async def module_functions(futs: list[concurrent.futures.Future[int]]) -> None:
    wait(futs)  # error: HD102
    for f in as_completed(futs):  # error: HD102
        print(f)
    concurrent.futures.wait(futs, timeout=1)  # error: HD102


async def threadsafe(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.run_coroutine_threadsafe(asyncio.sleep(1), loop).result()  # error: HD102


async def annotated(fut: concurrent.futures.Future[int]) -> int:
    return fut.result()  # error: HD102


async def fine(loop: asyncio.AbstractEventLoop) -> int:
    fut = pool.submit(job)
    value = await asyncio.wrap_future(fut)
    task = asyncio.ensure_future(asyncio.sleep(0))
    await task
    task.result()  # an asyncio task: .result() never blocks
    done, _ = await asyncio.wait([task])
    for t in done:
        t.result()  # type unknown: `.result()` alone is not reported
    other = loop.run_in_executor(None, job)
    await other
    other.result()
    quick = pool.submit(job)
    quick.result(timeout=0)  # returns (or raises) at once
    return value


async def done_callback() -> int:
    fut = pool.submit(job)
    event = asyncio.Event()
    fut.add_done_callback(lambda _: event.set())
    await event.wait()
    return fut.result()  # waited for through the callback


def sync_wait() -> int:
    return pool.submit(job).result()  # sync code
