import asyncio as aio


async def tick(n):
    for _ in range(n):
        await aio.sleep(0.1)
    await aio.sleep(0)
