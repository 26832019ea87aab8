import asyncio
from concurrent.futures import ThreadPoolExecutor


class Service:
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=4)

    async def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def restart(self):
        pool = ThreadPoolExecutor()
        await asyncio.get_running_loop().run_in_executor(pool, print, "restart")
        pool.shutdown(wait=False, cancel_futures=True)

    def close_sync(self):
        self._pool.shutdown(wait=True)
