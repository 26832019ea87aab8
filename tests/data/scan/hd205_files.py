# ruff: noqa
"""HD205: blocking file I/O in async code."""

import asyncio
import getpass
import glob
import io
import os
import os.path
import shutil
import sys
import tempfile
import typing
from os import path as osp
from pathlib import Path
from typing import IO, BinaryIO, Optional, TextIO

import aiofiles
import aiofiles.os
import anyio

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


async def peers_list(name: str, fd: int) -> str:
    io.open_code(name)  # error: HD205
    os.fdopen(fd)  # error: HD205
    answer = input("? ")  # error: HD205
    getpass.getpass()  # error: HD205
    sys.stdin.readline()  # error: HD205
    with os.fdopen(fd) as f:  # error: HD205
        f.read()  # the fdopen() above is the finding
    return answer


async def file_objects(
    t: TextIO,
    b: BinaryIO,
    g: IO[str],
    w: io.TextIOWrapper,
    r: io.BufferedReader,
    o: Optional[typing.IO[bytes]],
    mem: io.StringIO,
) -> None:
    t.read()  # error: HD205
    t.write("x")  # error: HD205
    b.readline()  # error: HD205
    g.writelines(["x"])  # error: HD205
    w.flush()  # error: HD205
    r.read(10)  # error: HD205
    o.seek(0)  # error: HD205
    t.fileno()  # a number: no I/O
    t.isatty()
    mem.write("x")  # in memory
    await anyio.wrap_file(t).read()


async def paths(name: str) -> None:
    os.path.exists(name)  # error: HD205
    os.path.isfile(name)  # error: HD205
    os.path.getsize(name)  # error: HD205
    os.path.getmtime(name)  # error: HD205
    os.path.realpath(name)  # error: HD205
    os.path.abspath(name)  # error: HD205
    os.path.expanduser(name)  # error: HD205
    osp.isdir(name)  # error: HD205
    os.stat(name)  # error: HD205
    os.listdir(name)  # error: HD205
    os.makedirs(name, exist_ok=True)  # error: HD205
    os.remove(name)  # error: HD205
    glob.glob("*.py")  # error: HD205
    tempfile.NamedTemporaryFile()  # error: HD205
    p = Path(name)
    p.exists()  # error: HD205
    p.is_file()  # error: HD205
    p.stat()  # error: HD205
    p.mkdir(parents=True)  # error: HD205
    p.unlink()  # error: HD205
    p.iterdir()  # error: HD205
    p.glob("*")  # error: HD205
    p.resolve()  # error: HD205
    (BASE / name).exists()  # error: HD205
    os.path.join(name, "x")  # string arithmetic
    os.path.basename(name)
    os.path.splitext(name)
    p.with_suffix(".txt")
    p.name
    p.parent.joinpath("x")
    await aiofiles.os.path.exists(name)
    await anyio.Path(name).exists()
    await asyncio.to_thread(os.path.exists, name)
    await asyncio.to_thread(lambda: p.exists())
    async with await anyio.open_file(name) as af:
        await af.read()
