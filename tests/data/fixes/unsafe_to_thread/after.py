import asyncio
import json

import requests


async def weather(city, *extra, **options):
    r = await asyncio.to_thread(requests.get, "https://example.invalid/weather", params={"q": city}, timeout=5)
    data = await asyncio.to_thread(json.loads, r.text)
    session = requests.Session()
    body = (await asyncio.to_thread(session.get, "https://example.invalid", *extra, **options)).json()
    await asyncio.sleep(0)
    return data, body
