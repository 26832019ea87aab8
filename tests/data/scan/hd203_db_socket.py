# ruff: noqa
"""HD203: synchronous database drivers and raw socket I/O in async code."""

import socket
import sqlite3

import redis

cache = redis.Redis()


async def database(uid: int) -> object:
    conn = sqlite3.connect("app.db")  # error: HD203
    row = conn.execute("SELECT 1 WHERE ?", (uid,)).fetchone()  # error: HD203
    cur = conn.cursor()
    cur.execute("SELECT 2")  # error: HD203
    conn.commit()  # error: HD203
    return row


async def redis_calls() -> None:
    cache.get("k")  # error: HD203
    cache.set("k", 1)  # error: HD203


async def sockets(host: str) -> bytes:
    sock = socket.create_connection((host, 80))  # error: HD203
    sock.sendall(b"x")  # error: HD203
    raw = socket.socket()
    raw.connect((host, 80))  # error: HD203
    return sock.recv(10)  # error: HD203


async def unknown(conn: object) -> None:
    conn.recv(10)  # error: HD203
    conn.sendall(b"x")  # error: HD203


async def fine(pool: object, host: str) -> None:
    rows = await pool.fetch("SELECT 1")  # awaited: async driver
    result = await pool.execute("SELECT 1")
    result.fetchall()  # buffered result of an async query: type unknown, name not distinctive
    print(rows)
    nb = socket.socket()
    nb.setblocking(False)
    try:
        nb.connect((host, 80))  # non-blocking socket: returns at once
    except BlockingIOError:
        pass


def sync_db() -> None:
    sqlite3.connect("x.db").execute("SELECT 1")
