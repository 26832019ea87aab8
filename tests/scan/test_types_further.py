"""Types one step further, across modules: return types, FastAPI dependencies, generators."""

from __future__ import annotations

from pathlib import Path

from hangdoctor.fix.api import fix_source
from hangdoctor.fix.model import FixSite
from hangdoctor.scan import ScanConfig, ScanOptions, scan_paths
from hangdoctor.scan.facts import FileFacts, facts_from_json, facts_to_json
from tests.scan.conftest import run_scan

SHOP = {
    "shop/__init__.py": "",
    "shop/database.py": """\
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine("sqlite://")
SessionLocal = sessionmaker(bind=engine)
AsyncSessionLocal = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
""",
    "shop/deps.py": """\
from .database import AsyncSessionLocal, SessionLocal


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


async def get_async_db():
    async with AsyncSessionLocal() as session:
        yield session
""",
    "shop/clients.py": """\
import asyncio
import concurrent.futures
import queue
import socket
from typing import Optional

import requests

jobs = queue.Queue()


def pool() -> concurrent.futures.Future[int]:
    return concurrent.futures.ThreadPoolExecutor().submit(int)


def session() -> Optional[requests.Session]:
    return None


def made():
    return requests.Session()


def pending() -> asyncio.Future[int]:
    return asyncio.get_running_loop().create_future()


class Blob:
    def download(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"")


class Bucket:
    def blob(self, name: str) -> Blob:
        return Blob()


class BaseStore:
    def bucket(self) -> Bucket:
        return Bucket()

    def http(self) -> requests.Session:
        return requests.Session()


def drain():
    while True:
        yield jobs.get()


def numbers():
    yield 1


def connection() -> socket.socket:
    return socket.create_connection(("127.0.0.1", 80))
""",
    "shop/routes.py": """\
from fastapi import Depends
from starlette.responses import StreamingResponse

from . import clients
from .clients import BaseStore, drain, made, numbers, pending, pool, session
from .deps import get_async_db, get_db


class Store(BaseStore):
    pass


async def route(db=Depends(get_db), adb=Depends(get_async_db)):
    pool().result()
    session().get("http://upstream")
    s = made()
    s.get("http://upstream")
    Store().bucket().blob("x").download("f")
    Store().http().get("http://upstream")
    clients.pool().result()
    db.query(Store).all()
    db.execute("select 1")
    db.add(Store())
    await adb.execute("select 1")
    adb.add(Store())
    pending().result()
    Store().bucket().blob("x")
    for job in drain():
        print(job)
    gen = drain()
    next(gen)
    print(sum(numbers()))
    later = drain()
    clients.connection().recv(1)
    return StreamingResponse(later)
""",
}


def test_types_known_to_another_module(write) -> None:  # type: ignore[no-untyped-def]
    """Return annotations, inferred returns, inherited methods and dependencies of other
    modules type the calls of a route; look-alikes (asyncio futures, AsyncSession,
    objects only built, generators not run) stay quiet."""
    root = write(SHOP)
    result = run_scan([root / "shop"], root)
    got = {(f.line, f.code): f for f in result.findings}
    assert set(got) == {
        (14, "HD102"),
        (15, "HD202"),
        (17, "HD202"),
        (18, "HD205"),
        (19, "HD202"),
        (20, "HD102"),
        (21, "HD203"),
        (22, "HD203"),
        (28, "HD206"),
        (31, "HD206"),
        (34, "HD203"),
    }
    assert len(result.findings) == len(got)  # `.recv` by name and by type: one finding
    assert all(f.file == "shop/routes.py" for f in result.findings)
    assert "(concurrent.futures.Future.result)" in got[(14, "HD102")].message
    assert "(sqlalchemy.orm.Query.all)" in got[(21, "HD203")].message
    assert "(socket.socket.recv)" in got[(34, "HD203")].message  # the type, not the name
    assert got[(18, "HD205")].chain[-3:] == ("route", "Blob.download", "open")


def test_iterating_a_generator_is_the_blocking_call(write) -> None:  # type: ignore[no-untyped-def]
    """The `for` over a sync generator of another module is reported, at the `for`, naming
    the generator and its blocking line; `next(g)` where `g` was made earlier, too."""
    root = write(SHOP)
    result = run_scan([root / "shop"], root)
    loop = next(f for f in result.findings if f.line == 28)
    assert loop.col == 4  # the `for`, not the call that makes the generator
    assert loop.message.startswith("iterating the sync generator `drain()`")
    assert "`queue.Queue.get` blocks in drain at shop/clients.py:49" in loop.message
    assert loop.chain == ("route", "drain", "queue.Queue.get")
    step = next(f for f in result.findings if f.line == 31)
    assert step.col == 4 and step.chain == ("route", "drain", "queue.Queue.get")


def test_no_fix_moves_the_call_that_makes_a_generator(write) -> None:  # type: ignore[no-untyped-def]
    """`for x in await asyncio.to_thread(gen)` would still run the body on the loop: the
    iteration gets no fix, while `list(gen())` runs whole in the thread."""
    root = write(
        {
            "app.py": """\
import queue

jobs = queue.Queue()


def drain():
    while True:
        yield jobs.get()


async def route():
    for job in drain():
        print(job)
    return list(drain())
"""
        }
    )
    result = run_scan([root / "app.py"], root)
    sites = [FixSite(f.code, f.line, f.col or 0) for f in result.findings]
    assert [(s.line, s.col) for s in sites] == [(12, 4), (14, 11)]
    text = (root / "app.py").read_text()
    outcome = fix_source(text, sites, unsafe=True)
    assert [s.line for s in outcome.skipped] == [12]
    assert "for job in drain():" in outcome.text
    assert "return await asyncio.to_thread(list, drain())" in outcome.text


def test_cached_facts_keep_return_types_and_iterations(write) -> None:  # type: ignore[no-untyped-def]
    """The facts round-trip through the cache's JSON, and a scan from the cache finds the
    same things."""
    root = write(SHOP)
    opts = ScanOptions(jobs=1)
    first = scan_paths([root / "shop"], opts, ScanConfig(root=root), cwd=root)
    second = scan_paths([root / "shop"], opts, ScanConfig(root=root), cwd=root)
    assert second.stats.parsed == 0 and second.findings == first.findings
    facts = FileFacts(
        "m",
        (),
        returns=(("pool", "call", "concurrent.futures.Future"), ("get_db", "yield", "x.S")),
    )
    assert facts_from_json(facts_to_json(facts)) == facts


def test_dependency_types_from_annotations(tmp_path: Path) -> None:
    """`Annotated[Session, Depends(...)]` and `db: Session = Depends(...)` take the
    annotation; an `AsyncSession` dependency is awaited and fine."""
    (tmp_path / "api.py").write_text(
        """\
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from deps import get_async_db, get_db


async def a(db: Annotated[Session, Depends(get_db)]):
    db.commit()


async def b(db: AsyncSession = Depends(get_async_db)):
    await db.commit()
    db.add(1)
""",
        encoding="utf-8",
    )
    result = run_scan([tmp_path / "api.py"], tmp_path)
    assert [(f.line, f.code) for f in result.findings] == [(11, "HD203")]
