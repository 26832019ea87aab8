import asyncio
import json

import requests


async def weather(city, *extra, **options):
    r = requests.get("https://example.invalid/weather", params={"q": city}, timeout=5)
    data = json.loads(r.text)
    session = requests.Session()
    body = session.get("https://example.invalid", *extra, **options).json()
    await asyncio.sleep(0)
    return data, body
