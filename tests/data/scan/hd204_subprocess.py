# ruff: noqa
"""HD204: waiting for a child process in async code."""

import asyncio
import os
import subprocess
from subprocess import check_output


import multiprocessing
import pty

import anyio


async def waits() -> None:
    subprocess.run(["true"], check=False)  # error: HD204
    check_output(["true"])  # error: HD204
    os.system("true")  # error: HD204
    proc = subprocess.Popen(["true"])  # error: HD204
    proc.wait()  # error: HD204
    proc.communicate()  # error: HD204


async def unknown(proc: object) -> None:
    proc.communicate()  # error: HD204


async def fine() -> None:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    await proc.communicate()
    child = subprocess.Popen(["true"])  # error: HD204
    child.poll()
    child.wait(timeout=0)  # polls
    os.waitpid(-1, os.WNOHANG)  # polls
    await asyncio.to_thread(subprocess.run, ["true"], check=False)
    await anyio.run_process(["true"])
    os.wait3(os.WNOHANG)  # polls
    os.wait4(-1, os.WNOHANG)  # polls
    await asyncio.to_thread(os.waitpid, -1, 0)
    await asyncio.to_thread(lambda: subprocess.Popen(["true"]).wait())


async def spawns() -> None:
    os.popen("true")  # error: HD204
    os.spawnl(os.P_WAIT, "/bin/true", "true")  # error: HD204
    os.spawnv(os.P_NOWAIT, "/bin/true", ["true"])  # error: HD204
    os.spawnlp(os.P_WAIT, "true", "true")  # error: HD204
    os.spawnvpe(os.P_WAIT, "true", ["true"], {})  # error: HD204
    os.posix_spawn("/bin/true", ["true"], {})  # error: HD204
    os.posix_spawnp("true", ["true"], {})  # error: HD204
    with subprocess.Popen(["true"]) as p:  # error: HD204
        p.poll()
    subprocess.getoutput("true")  # error: HD204
    subprocess.getstatusoutput("true")  # error: HD204
    subprocess.call(["true"])  # error: HD204
    subprocess.check_call(["true"])  # error: HD204


async def process_waits() -> None:
    os.wait()  # error: HD204
    os.wait3(0)  # error: HD204
    os.wait4(-1, 0)  # error: HD204
    os.waitid(os.P_ALL, 0, os.WEXITED)  # error: HD204
    os.waitpid(-1, 0)  # error: HD204
    pty.spawn("sh")  # error: HD204
    worker = multiprocessing.Process(target=print)
    worker.start()
    worker.join()  # error: HD204


async def nested() -> None:
    def helper() -> None:
        subprocess.Popen(["true"]).wait()  # a sync helper run in a thread

    await asyncio.to_thread(helper)
