import asyncio
from concurrent.futures import ThreadPoolExecutor as Pool


async def crunch(items):
    loop = asyncio.get_running_loop()
    with Pool(4) as ex:
        total = await loop.run_in_executor(ex, sum, items)
    return total
