import asyncio
from concurrent.futures import ThreadPoolExecutor


def work(n):
    return n * n


async def fan_out(numbers):
    loop = asyncio.get_running_loop()
    ex = ThreadPoolExecutor()
    pending = set()
    try:
        fut = loop.run_in_executor(ex, work, numbers[0])
        pending.add(fut)
        first = await fut
        pending.discard(fut)
        rest = await asyncio.gather(*(loop.run_in_executor(ex, work, n) for n in numbers[1:]))
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=False, cancel_futures=True)
    return [first, *rest]
