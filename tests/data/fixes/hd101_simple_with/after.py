import asyncio
import concurrent.futures as cf


def render(page):
    return f"<h1>{page}</h1>"


async def handler(page):
    loop = asyncio.get_running_loop()
    pool = cf.ProcessPoolExecutor()
    pending = set()
    try:
        fut = loop.run_in_executor(pool, render, page)
        pending.add(fut)
        html = await fut
        pending.discard(fut)
        fut = loop.run_in_executor(pool, print, html)
        pending.add(fut)
        await fut
        pending.discard(fut)
        fut = loop.run_in_executor(pool, len, html)
        pending.add(fut)
        size: int = await fut
        pending.discard(fut)
        if size > 10:
            fut = loop.run_in_executor(pool, str.upper, html)
            pending.add(fut)
            return await fut
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
    return html
