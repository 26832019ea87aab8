# ruff: noqa
"""HD205: blocking file I/O in async code."""

import io
import shutil
from pathlib import Path

import aiofiles

BASE = Path(__file__).parent


async def reads(name: str) -> str:
    with open(name) as f:  # error: HD205
        data = f.read()  # the open() above is the finding; not reported twice
    io.open(name).close()  # error: HD205
    Path(name).read_text()  # error: HD205
    (BASE / name).write_bytes(b"")  # error: HD205
    BASE.parent.read_bytes()  # error: HD205
    shutil.copy(name, name + ".bak")  # error: HD205
    return data


async def unknown(path: object) -> None:
    path.read_text()  # error: HD205


async def fine(name: str) -> str:
    async with aiofiles.open(name) as f:
        text = await f.read()
    handle = await aiofiles.open(name)
    await handle.read()
    buffer = io.StringIO()
    buffer.write("x")  # in memory: type known, not a file on disk
    return text
