import asyncio as aio
import time


async def tick(n):
    for _ in range(n):
        time.sleep(0.1)
    await aio.sleep(0)
