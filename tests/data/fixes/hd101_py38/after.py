import asyncio
from concurrent.futures import ThreadPoolExecutor as Pool


async def crunch(items):
    loop = asyncio.get_running_loop()
    ex = Pool(4)
    pending = set()
    try:
        fut = loop.run_in_executor(ex, sum, items)
        pending.add(fut)
        total = await fut
        pending.discard(fut)
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=False)
    return total
