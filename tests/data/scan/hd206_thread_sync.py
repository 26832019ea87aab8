# ruff: noqa
"""HD206: waiting on threading primitives and thread queues in async code."""

import asyncio
import queue
import threading

jobs_lock = threading.Lock()
ready = threading.Event()
work: queue.Queue[int] = queue.Queue()


class Worker(threading.Thread):
    pass


async def waits() -> None:
    with jobs_lock:  # error: HD206
        pass
    jobs_lock.acquire()  # error: HD206
    ready.wait(5)  # error: HD206
    work.get()  # error: HD206
    t = threading.Thread(target=print)
    t.join()  # error: HD206
    Worker().join()  # error: HD206


class Holder:
    def __init__(self) -> None:
        self._lock = threading.RLock()

    async def locked(self) -> None:
        with self._lock:  # held for nothing, here and everywhere: a microsecond
            pass


async def unknown(lock: object) -> None:
    lock.acquire()  # error: HD206


async def unknown_lock(lock: threading.Lock) -> None:
    with lock:  # error: HD206
        pass  # who else holds it, and for how long, is not known


# ---- how long a lock is held: brief everywhere is no wait worth a finding ----------

state: dict[str, int] = {}
counts_lock = threading.Lock()  # held for a few operations, everywhere
slow_lock = threading.Lock()  # a worker thread holds it while it sleeps
config_lock = threading.Lock()  # a worker thread holds it across a helper that reads a file
loop_lock = threading.Lock()  # a worker thread holds it across a loop of calls
await_lock = threading.Lock()
taken_lock = threading.Lock()  # taken with acquire(): its release is not followed


class Cache:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, int] = {}
        self._size = 0

    async def get(self, key: str) -> int | None:
        with self._lock:
            return self._data.get(key)

    async def put(self, key: str, value: int) -> None:
        with self._lock:
            self._data[key] = value
            self._size = len(self._data)
            if self._size > 100:
                self._data.clear()


async def count() -> None:
    with counts_lock:
        state["n"] = state.get("n", 0) + 1


def bump_in_thread() -> None:
    with counts_lock:
        state["m"] = state.get("m", 0) + 1


def get_thing() -> int:
    with counts_lock:
        if "t" not in state:
            state["t"] = len(state)
        return state["t"]


async def uses_short_helper() -> int:
    return get_thing()


async def waits_for_sleeper() -> None:
    with slow_lock:  # error: HD206
        state["x"] = 1


def sleeper() -> None:
    import time

    with slow_lock:
        time.sleep(5)


def _read_config() -> str:
    with open("/etc/app.conf") as fh:
        return fh.read()


def reload_config() -> None:
    with config_lock:
        state["cfg"] = len(_read_config())


async def reads_config() -> int:
    with config_lock:  # error: HD206
        return state.get("cfg", 0)


def flush_all(items: list[Holder]) -> None:
    with loop_lock:
        for item in items:
            item.locked()


async def notes() -> None:
    with loop_lock:  # error: HD206
        state["y"] = 2


async def held_across_await() -> None:
    with await_lock:  # error: HD206
        await asyncio.sleep(1)


def takes_by_hand() -> None:
    taken_lock.acquire()
    state["z"] = 3
    taken_lock.release()


async def waits_for_hand() -> None:
    with taken_lock:  # error: HD206
        state["z"] = 4


def only_in_threads() -> None:
    with counts_lock:
        state["w"] = 5


registry_lock = threading.Lock()  # loops over a registry in memory only: still brief
receivers: list[object] = []


def connect(receiver: object) -> None:
    with registry_lock:
        for known in receivers:
            if id(known) == id(receiver):
                return
        receivers.append(receiver)


def disconnect(receiver: object) -> None:
    with registry_lock:
        for index in range(len(receivers) - 1, -1, -1):
            if receivers[index] is receiver:
                receivers.pop(index)


async def registers(receiver: object) -> None:
    with registry_lock:
        receivers.append(receiver)


async def fine(lock: asyncio.Lock, other: object) -> None:
    async with lock:
        pass
    await lock.acquire()
    jobs_lock.acquire(blocking=False)
    jobs_lock.acquire(False)
    work.get(block=False)
    work.get_nowait()
    ready.wait(timeout=0)
    ready.is_set()
    await asyncio.wait_for(other.acquire(), 1)  # a coroutine handed on
    ",".join(["a", "b"])
    aq: asyncio.Queue[int] = asyncio.Queue()
    await aq.get()
    aq.get_nowait()
    await asyncio.to_thread(ready.wait)
