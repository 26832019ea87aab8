import asyncio


def work(n):
    return n * n


async def fan_out(numbers):
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, work, numbers[0])
    rest = await asyncio.gather(*(loop.run_in_executor(None, work, n) for n in numbers[1:]))
    return [first, *rest]
