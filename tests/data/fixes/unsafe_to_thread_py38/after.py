import asyncio
import functools
import json

import requests


async def weather(city, *extra, **options):
    r = await asyncio.get_running_loop().run_in_executor(None, functools.partial(requests.get, "https://example.invalid/weather", params={"q": city}, timeout=5))
    data = await asyncio.get_running_loop().run_in_executor(None, json.loads, r.text)
    session = requests.Session()
    body = (await asyncio.get_running_loop().run_in_executor(None, functools.partial(session.get, "https://example.invalid", *extra, **options))).json()
    await asyncio.sleep(0)
    return data, body
