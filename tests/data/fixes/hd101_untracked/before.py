import asyncio
from concurrent.futures import ThreadPoolExecutor


def work(n):
    return n * n


async def fan_out(numbers):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor() as ex:
        first = await loop.run_in_executor(ex, work, numbers[0])
        rest = await asyncio.gather(*(loop.run_in_executor(ex, work, n) for n in numbers[1:]))
    return [first, *rest]
