# ruff: noqa
"""Method names alone: reported only where the catalog calls the name distinctive."""

import asyncio
import os


async def look_alikes(data: dict[str, int], items: list[str], obj: object) -> None:
    data.get("a")
    items.index("a")
    ",".join(items)
    os.path.join("a", "b")
    obj.read()  # `.read()` alone: too common to report
    obj.write("x")
    obj.get()
    obj.put(1)
    obj.wait()
    obj.join()
    obj.execute("SELECT 1")
    obj.fetchall()
    obj.result()
    obj.connect()
    obj.shutdown()
    obj.getaddrinfo("h", 80)


async def distinctive(obj: object) -> None:
    obj.recv(1)  # error: HD203
    obj.communicate()  # error: HD204
    obj.acquire()  # error: HD206
    obj.read_text()  # error: HD205


async def awaited_or_handed_on(obj: object) -> None:
    await obj.recv(1)
    await asyncio.wait_for(obj.acquire(), 1)
    asyncio.ensure_future(obj.communicate())
    after = await obj.open()
    after.recv(1)  # an object an await returned comes from an async API
