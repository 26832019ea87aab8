import asyncio
from concurrent.futures import ThreadPoolExecutor

pool = ThreadPoolExecutor()


def build_report(kind):
    return kind.upper()


async def report(kind):
    fut = pool.submit(build_report, kind)
    text = await asyncio.wrap_future(fut)
    title = await asyncio.wait_for(asyncio.wrap_future(pool.submit(build_report, "title")), timeout=5)
    return {"title": (await asyncio.wait_for(asyncio.wrap_future(pool.submit(str, title)), 3)).strip(), "text": text}
