import asyncio


def render(page):
    return f"<h1>{page}</h1>"


async def handler(page):
    loop = asyncio.get_running_loop()
    html = await loop.run_in_executor(None, render, page)
    await loop.run_in_executor(None, print, html)
    size: int = await loop.run_in_executor(None, len, html)
    if size > 10:
        return await loop.run_in_executor(None, str.upper, html)
    return html
