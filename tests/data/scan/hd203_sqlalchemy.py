# ruff: noqa
"""HD203: SQLAlchemy's sync Session, Connection and Engine used in async code."""

import asyncio
from typing import Annotated, Optional

from fastapi import Depends
from sqlalchemy import create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlmodel import Session as ModelSession

engine = create_engine("postgresql://db/app")
SessionLocal = sessionmaker(bind=engine)
db_session = scoped_session(sessionmaker(bind=engine))
async_engine = create_async_engine("postgresql+asyncpg://db/app")
AsyncSessionLocal = async_sessionmaker(async_engine)


class User:
    pass


async def route(db: Session) -> list[User]:
    stmt = select(User).where(True)  # builds a statement: no I/O
    user = User()
    db.add(user)  # only marks the object
    db.add_all([user])
    db.expire(user)
    db.flush()  # error: HD203
    db.commit()  # error: HD203
    db.refresh(user)  # error: HD203
    db.get(User, 1)  # error: HD203
    db.scalars(stmt).all()  # error: HD203
    db.scalar(stmt)  # error: HD203
    db.rollback()  # error: HD203
    return db.execute(stmt).scalars().all()  # error: HD203


async def dependency(db: Annotated[Session, Depends(SessionLocal)], other: Optional[Session] = None) -> None:
    db.execute(text("SELECT 1"))  # error: HD203
    other.merge(User())  # error: HD203


async def legacy_query() -> object:
    with SessionLocal() as session:  # error: HD203
        first = session.query(User).filter(True).order_by(None).first()  # error: HD203
        session.query(User).count()  # error: HD203
        session.query(User)  # builds a query: no I/O
    db_session.query(User).all()  # error: HD203
    db_session.commit()  # error: HD203
    return first


async def core() -> None:
    with engine.connect() as conn:  # error: HD203
        conn.execute(text("SELECT 1"))  # error: HD203
        conn.commit()  # error: HD203
    with engine.begin() as tx:  # error: HD203
        tx.exec_driver_sql("SELECT 1")  # error: HD203
    with Session(engine) as s, s.begin():  # error: HD203
        s.add(User())


async def sqlmodel_session(session: ModelSession) -> None:
    session.exec(select(User))  # error: HD203


async def fine(session: AsyncSession, aengine: AsyncEngine, sync: Session) -> None:
    await session.execute(select(User))
    session.add(User())
    await session.commit()
    async with AsyncSessionLocal() as s2:
        await s2.scalars(select(User))
        s2.add(User())
    async with aengine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    await asyncio.to_thread(sync.execute, select(User))
    await asyncio.to_thread(lambda: sync.execute(select(User)))
    await session.run_sync(lambda s: s.execute(select(User)))

    def in_thread() -> None:
        sync.commit()

    await asyncio.to_thread(in_thread)


def sync_route(db: Session) -> None:
    db.execute(select(User))  # a sync route runs in a worker thread
