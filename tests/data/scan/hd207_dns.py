# ruff: noqa
"""HD207: synchronous DNS resolution in async code."""

import asyncio
import socket
from socket import getaddrinfo


async def lookups(host: str) -> None:
    socket.gethostbyname(host)  # error: HD207
    getaddrinfo(host, 80)  # error: HD207
    socket.getfqdn()  # error: HD207


async def unknown(resolver: object, host: str) -> None:
    resolver.gethostbyname(host)  # error: HD207


async def fine(host: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.getaddrinfo(host, 80)
    loop.getaddrinfo(host, 80).close()  # type known (the loop): not a socket call
    await asyncio.to_thread(socket.gethostbyname, host)
