import asyncio


async def crunch(items):
    loop = asyncio.get_running_loop()
    total = await loop.run_in_executor(None, sum, items)
    return total
