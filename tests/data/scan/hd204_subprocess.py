# ruff: noqa
"""HD204: waiting for a child process in async code."""

import asyncio
import os
import subprocess
from subprocess import check_output


async def waits() -> None:
    subprocess.run(["true"], check=False)  # error: HD204
    check_output(["true"])  # error: HD204
    os.system("true")  # error: HD204
    proc = subprocess.Popen(["true"])
    proc.wait()  # error: HD204
    proc.communicate()  # error: HD204


async def unknown(proc: object) -> None:
    proc.communicate()  # error: HD204


async def fine() -> None:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    await proc.communicate()
    child = subprocess.Popen(["true"])
    child.poll()
    child.wait(timeout=0)  # polls
    os.waitpid(-1, os.WNOHANG)  # polls
    await asyncio.to_thread(subprocess.run, ["true"], check=False)
