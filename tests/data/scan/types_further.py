# ruff: noqa
"""Types one step further: attribute chains, return types, generators iterated, dependencies."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
from collections.abc import AsyncIterator, Iterator
from functools import cached_property
from typing import Annotated, Optional

import requests
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import StreamingResponse

app = FastAPI()
jobs: queue.Queue[int] = queue.Queue()
engine = create_engine("sqlite://")
SessionLocal = sessionmaker(bind=engine)
AsyncSessionLocal = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))


# ---- attribute chains ------------------------------------------------------------------


class Blob:
    def download_to_filename(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"")


class Bucket:
    def blob(self, name: str) -> Blob:
        return Blob()


class StorageClient:
    def get_bucket(self, name: str) -> Bucket:
        return Bucket()


class Base:
    def __init__(self) -> None:
        self.conn = sqlite3.connect("app.db")


class Repo(Base):
    db: sqlite3.Connection

    def __init__(self) -> None:
        super().__init__()
        self.session = requests.Session()
        self.client = StorageClient()
        self.cache: dict[str, int] = {}

    @property
    def http(self) -> requests.Session:
        return self.session

    @cached_property
    def lookup(self) -> dict[str, str]:
        return {}

    async def chains(self) -> None:
        self.conn.cursor().execute("select 1")  # error: HD203
        self.db.execute("select 1")  # error: HD203
        self.session.get("http://upstream")  # error: HD202
        self.http.get("http://upstream")  # error: HD202
        self.client.get_bucket("b").blob("x").download_to_filename("f")  # error: HD205
        self.cache.get("x")  # a dict
        self.lookup.get("x")  # a dict, from a property
        self.client.get_bucket("b").blob("x")  # builds objects, reads nothing


# ---- return types ----------------------------------------------------------------------


def pool() -> concurrent.futures.Future[int]:
    return concurrent.futures.ThreadPoolExecutor().submit(int)


def maybe_session() -> Optional[requests.Session]:
    return None


def union_session() -> requests.Session | None:
    return None


def quoted_session() -> "requests.Session":
    return requests.Session()


def made_session():
    return requests.Session()


def settings() -> dict[str, str]:
    return {}


def loop_future() -> asyncio.Future[int]:
    return asyncio.get_running_loop().create_future()


async def async_session() -> requests.Session:
    return requests.Session()


class Api:
    def session(self) -> requests.Session:
        return requests.Session()

    def pending(self) -> asyncio.Future[int]:
        return asyncio.get_running_loop().create_future()


async def returns() -> None:
    pool().result()  # error: HD102
    maybe_session().get("http://upstream")  # error: HD202
    union_session().post("http://upstream")  # error: HD202
    quoted_session().get("http://upstream")  # error: HD202
    s = made_session()
    s.get("http://upstream")  # error: HD202
    Api().session().get("http://upstream")  # error: HD202
    settings().get("x")  # a dict
    loop_future().result()  # an asyncio future: never blocks
    Api().pending().result()
    await asyncio.sleep(0)


async def async_return_is_a_coroutine() -> None:
    session = async_session()  # a coroutine, not a session
    session.close()


# ---- generators iterated on the loop ---------------------------------------------------


def drain() -> Iterator[int]:
    while True:
        yield jobs.get()


def lines(path: str) -> Iterator[str]:
    with open(path) as f:
        yield from f


def numbers() -> Iterator[int]:
    yield 1
    yield 2


async def ticks() -> AsyncIterator[int]:
    while True:
        await asyncio.sleep(1)
        yield 1


async def iterates() -> None:
    for item in drain():  # error: HD206
        print(item)
    gen = drain()
    next(gen)  # error: HD206
    print(list(lines("a.txt")))  # error: HD205
    for i, line in enumerate(lines("b.txt")):  # error: HD205
        print(i, line)
    total = sum(numbers())
    async for tick in ticks():
        print(tick, total)
    later = drain()  # made, not run
    del later


async def streams() -> StreamingResponse:
    return StreamingResponse(lines("big.txt"))  # Starlette iterates it in a thread


def sync_helper() -> list[str]:
    return list(lines("c.txt"))


async def through_a_helper() -> None:
    sync_helper()  # error: HD205


# ---- FastAPI dependencies --------------------------------------------------------------


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def get_conn() -> sqlite3.Connection:
    return sqlite3.connect("app.db")


async def get_async_db() -> AsyncIterator[AsyncSession]:
    async with AsyncSessionLocal() as session:
        yield session


@app.get("/typed")
async def typed(db: Session = Depends(get_db)) -> None:
    db.execute(select(1))  # error: HD203


@app.get("/untyped")
async def untyped(db=Depends(get_db)) -> None:
    db.query(Repo).all()  # error: HD203
    db.add(Repo())  # in memory
    db.commit()  # error: HD203


@app.get("/annotated")
async def annotated(db: Annotated[Session, Depends(get_db)]) -> None:
    db.execute(select(1))  # error: HD203


@app.get("/returned")
async def returned(conn=Depends(get_conn)) -> None:
    conn.execute("select 1")  # error: HD203


@app.get("/async")
async def async_dependency(db=Depends(get_async_db)) -> None:
    await db.execute(select(1))
    db.add(Repo())
    await db.commit()


@app.get("/async-annotated")
async def async_annotated(db: Annotated[AsyncSession, Depends(get_async_db)]) -> None:
    await db.execute(select(1))
    await db.commit()


@app.get("/sync")
def sync_route(db: Session = Depends(get_db)) -> None:
    db.execute(select(1))  # a sync route runs in a thread
