# ruff: noqa
"""HD601: locks taken in opposite orders, or again by the task that holds them."""

import asyncio
import asyncio as aio
import threading
from asyncio import Lock

import anyio

accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()


async def transfer() -> None:
    async with accounts_lock:
        await asyncio.sleep(0)
        async with ledger_lock:  # error: HD601
            pass


async def close_day() -> None:
    async with ledger_lock:
        async with accounts_lock:  # error: HD601
            pass


# through an awaited helper: the finding is at the call, with the chain
users_lock = Lock()
orders_lock = aio.Lock()


async def lock_orders() -> None:
    async with orders_lock:
        await asyncio.sleep(0)


async def lock_users() -> None:
    async with users_lock:
        await asyncio.sleep(0)


async def checkout() -> None:
    async with users_lock:
        await lock_orders()  # error: HD601


async def cancel_order() -> None:
    async with orders_lock:
        await lock_users()  # error: HD601


# one `async with` with two items takes them in order
cache_lock = anyio.Lock()
index_lock = anyio.Lock()


async def rebuild() -> None:
    async with cache_lock, index_lock:  # error: HD601
        pass


async def invalidate() -> None:
    async with index_lock:
        async with cache_lock:  # error: HD601
            pass


# an asyncio.Lock is not re-entrant
state_lock = asyncio.Lock()


async def save_state() -> None:
    async with state_lock:
        await asyncio.sleep(0)


async def update_state() -> None:
    async with state_lock:
        await save_state()  # error: HD601


async def nested_twice() -> None:
    async with state_lock:
        async with state_lock:  # error: HD601
            pass


class Inventory:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._stock_lock = asyncio.Lock()
        self._audit_lock = asyncio.Lock()

    async def reserve(self) -> None:
        async with self._lock:
            await self._flush()  # error: HD601

    async def _flush(self) -> None:
        async with self._lock:
            await asyncio.sleep(0)

    async def restock(self) -> None:
        async with self._stock_lock:
            async with self._audit_lock:  # error: HD601
                pass

    async def audit(self) -> None:
        async with self._audit_lock:
            await self._restock_inner()  # error: HD601

    async def _restock_inner(self) -> None:
        async with self._stock_lock:
            pass


# a semaphore taken in both orders with a lock: a deadlock once its tokens are all held
pool_slots = asyncio.Semaphore(10)
registry_lock = asyncio.Lock()


async def register() -> None:
    async with pool_slots:
        async with registry_lock:  # error: HD601
            pass


async def unregister() -> None:
    async with registry_lock:
        async with pool_slots:  # error: HD601
            pass


# ---- look-alikes that are fine ------------------------------------------------------

first_lock = asyncio.Lock()
second_lock = asyncio.Lock()


async def same_order_a() -> None:
    async with first_lock:
        async with second_lock:
            pass


async def same_order_b() -> None:
    async with first_lock:
        await asyncio.sleep(0)
        async with second_lock:
            pass


# the opposite order, but both hold `gate_lock` first: only one runs at a time
gate_lock = asyncio.Lock()
left_lock = asyncio.Lock()
right_lock = asyncio.Lock()


async def gated_a() -> None:
    async with gate_lock:
        async with left_lock:
            async with right_lock:
                pass


async def gated_b() -> None:
    async with gate_lock:
        async with right_lock:
            async with left_lock:
                pass


# a new lock per call is never shared
async def local_locks() -> None:
    a = asyncio.Lock()
    b = asyncio.Lock()
    async with a:
        async with b:
            pass
    async with b:
        async with a:
            pass


# locks passed in: which objects they are is not known here
async def passed_in(a: asyncio.Lock, b: asyncio.Lock) -> None:
    async with a:
        async with b:
            pass
    async with b:
        async with a:
            pass


# one object under two names is not two locks; a name bound twice is not a known lock
alias_lock = first_lock
maybe_lock = asyncio.Lock()
maybe_lock = asyncio.Semaphore(2)


async def aliases() -> None:
    async with second_lock:
        async with alias_lock:
            pass
    async with maybe_lock:
        async with first_lock:
            pass
    async with first_lock:
        async with maybe_lock:
            pass


# a semaphore and an anyio lock may be entered again (a token to spare, or an error)
slots = asyncio.Semaphore(4)
anyio_lock = anyio.Lock()


async def semaphore_twice() -> None:
    async with slots:
        async with slots:
            pass
    async with anyio_lock:
        async with anyio_lock:
            pass


# a helper that takes the lock only when asked to, a task started under the lock, a
# nested function: none of them takes it again in this task every time
async def maybe_save(locked: bool) -> None:
    if not locked:
        async with state_lock:
            pass


async def conditional_reentry() -> None:
    async with state_lock:
        await maybe_save(True)
        asyncio.create_task(save_state())

        async def later() -> None:
            async with state_lock:
                pass


# a try-lock never waits: `acquire()` of a free asyncio lock returns at once
async def try_lock_a() -> None:
    async with first_lock:
        if not second_lock.locked():
            async with second_lock:
                pass


async def try_lock_b() -> None:
    async with second_lock:
        if not first_lock.locked():
            async with first_lock:
                pass


# a thread lock is HD206's business (a sync `with`), not a lock order
thread_lock = threading.Lock()


class Account:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def credit(self, other: "Account") -> None:
        async with self._lock:
            await other.debit()  # another object's lock

    async def debit(self) -> None:
        async with self._lock:
            pass
