"""Sleeps under every alias; asyncio is not imported yet."""

from __future__ import annotations

import asyncio
import logging
from time import sleep

log = logging.getLogger(__name__)


async def poll(ready):
    while not ready():
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    await asyncio.sleep(2)  # back off

    def sync_helper():
        sleep(3)  # a sync def inside async code is not async code

    return sync_helper
