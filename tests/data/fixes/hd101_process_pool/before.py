import asyncio
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def render(page):
    return f"<h1>{page}</h1>"


def setup():
    pass


async def handler(page):
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor() as pool:
        return await loop.run_in_executor(pool, render, page)


async def with_setup(page):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(initializer=setup) as pool:
        return await loop.run_in_executor(pool, render, page)


async def shadowed(page, pool):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor() as ex:
        pool.submit(render, page)

        async def inner(ex):
            return await loop.run_in_executor(ex, render, page)

        return await inner(ex)
