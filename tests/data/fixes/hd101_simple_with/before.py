import asyncio
import concurrent.futures as cf


def render(page):
    return f"<h1>{page}</h1>"


async def handler(page):
    loop = asyncio.get_running_loop()
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        html = await loop.run_in_executor(pool, render, page)
        await loop.run_in_executor(pool, print, html)
        size: int = await loop.run_in_executor(pool, len, html)
        if size > 10:
            return await loop.run_in_executor(pool, str.upper, html)
    return html
