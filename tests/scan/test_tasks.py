"""HD601 and HD602 across modules: locks and clients imported, re-exported, or not the same."""

from __future__ import annotations

from hangdoctor.scan.facts import FileFacts, facts_from_json, facts_to_json
from hangdoctor.scan.files import facts_from_bytes
from hangdoctor.scan.knowledge import build_knowledge
from tests.scan.conftest import run_scan

BANK = {
    "bank/__init__.py": "",
    "bank/locks.py": """\
import asyncio

accounts_lock = asyncio.Lock()
ledger_lock = asyncio.Lock()
""",
    "bank/shared.py": "from .locks import ledger_lock as journal_lock\n",
    "bank/ledger.py": """\
from bank import locks


async def append_entry():
    async with locks.ledger_lock:
        pass
""",
    "bank/transfer.py": """\
from .ledger import append_entry
from .locks import accounts_lock


async def transfer():
    async with accounts_lock:
        await append_entry()
""",
    "bank/close.py": """\
from bank.locks import accounts_lock
from bank.shared import journal_lock


async def close_day():
    async with journal_lock:
        async with accounts_lock:
            pass
""",
}


def test_lock_order_across_modules(write) -> None:  # type: ignore[no-untyped-def]
    """The same lock imported (and re-exported under another name) is one lock."""
    root = write(BANK)
    result = run_scan([root / "bank"], root)
    got = {(f.file, f.line): f for f in result.findings}
    assert set(got) == {("bank/transfer.py", 7), ("bank/close.py", 7)}
    assert {f.code for f in result.findings} == {"HD601"}
    transfer = got[("bank/transfer.py", 7)]
    assert transfer.function == "transfer"
    assert transfer.chain == ("transfer", "append_entry", "async with locks.ledger_lock")
    assert "bank/ledger.py:5" in transfer.message and "bank/close.py:7" in transfer.message
    steps = result.chain_of(transfer)
    assert [(s.file, s.line) for s in steps] == [("bank/transfer.py", 7), ("bank/ledger.py", 5)]
    close = got[("bank/close.py", 7)]
    assert close.chain == ()
    assert close.message.startswith("`close_day` takes `journal_lock` then `accounts_lock`")


def test_locks_of_the_same_name_in_two_scripts_are_not_one(write) -> None:  # type: ignore[no-untyped-def]
    """Two scripts called app.py each have their own `lock_a`: no inversion between them."""
    script = """\
import asyncio

lock_a = asyncio.Lock()
lock_b = asyncio.Lock()


async def work():
    async with {}:
        async with {}:
            pass
"""
    root = write(
        {
            "one/app.py": script.format("lock_a", "lock_b"),
            "two/app.py": script.format("lock_b", "lock_a"),
        }
    )
    assert run_scan([root], root).findings == ()


def test_a_lock_bound_elsewhere_is_not_a_lock(write) -> None:  # type: ignore[no-untyped-def]
    """A module-level name rebound by another function (`global`) is not a known lock."""
    root = write(
        {
            "app.py": """\
import asyncio

lock_a = asyncio.Lock()
lock_b = asyncio.Lock()


def reset(shared):
    global lock_b
    lock_b = shared


async def one():
    async with lock_a:
        async with lock_b:
            pass


async def two():
    async with lock_b:
        async with lock_a:
            pass
"""
        }
    )
    assert run_scan([root], root).findings == ()


def test_pool_leaks_across_modules(write) -> None:  # type: ignore[no-untyped-def]
    """An imported session factory and an imported client are known by their module."""
    root = write(
        {
            "shop/__init__.py": "",
            "shop/db.py": """\
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

engine = create_async_engine("postgresql+asyncpg://db/shop")
SessionLocal = async_sessionmaker(engine)
""",
            "shop/clients.py": "import httpx\n\nupstream = httpx.AsyncClient()\n",
            "shop/helpers.py": "def SessionLocal():\n    return object()\n",
            "shop/routes.py": """\
from .clients import upstream
from .db import SessionLocal
from . import helpers


async def orders():
    session = SessionLocal()
    return await session.execute("SELECT 1")


async def feed(request):
    response = await upstream.send(request, stream=True)
    return response.status_code


async def not_a_factory():
    thing = helpers.SessionLocal()
    return await thing.execute("SELECT 1")
""",
        }
    )
    result = run_scan([root / "shop"], root)
    assert [(f.file, f.line, f.code) for f in result.findings] == [
        ("shop/routes.py", 7, "HD602"),
        ("shop/routes.py", 12, "HD602"),
    ]


def test_task_facts_round_trip() -> None:
    """Locks, awaits, leaks and module objects survive the cache's JSON."""
    source = b"""\
import asyncio
import httpx

lock = asyncio.Lock()
client = httpx.AsyncClient()


class Store:
    _class_lock = asyncio.Semaphore(2)

    def __init__(self):
        self._lock = asyncio.Lock()

    async def save(self):
        async with self._lock, lock:
            if self:
                await self.flush()

    async def flush(self):
        r = await client.send(None, stream=True)
        return r.status_code
"""
    facts = facts_from_bytes(source, "app.py", "app", False, build_knowledge())
    assert isinstance(facts, FileFacts)
    assert facts_from_json(facts_to_json(facts)) == facts
    save = next(fn for fn in facts.functions if fn.qualname == "Store.save")
    assert [(k.key, k.instance, k.held) for k in save.locks] == [
        ("app.Store._lock", True, ()),
        ("app.lock", False, (0,)),
    ]
    (flush,) = save.awaits
    assert flush.on_self and flush.conditional and flush.held == (0, 1)
    assert dict(facts.objects) == {
        "lock": "asyncio.Lock",
        "Store._class_lock": "asyncio.Semaphore",
    }
