# ruff: noqa
"""Startup and shutdown code: what runs once, before the server takes requests or after
it stopped, is shown apart (`# startup: HDxxx`, `# shutdown: HDxxx`), not as a hang."""

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import requests
import uvicorn
from aiohttp import web
from fastapi import Depends, FastAPI
from starlette.applications import Starlette

pool = ThreadPoolExecutor()


def load_model() -> bytes:
    time.sleep(30)  # a sync helper: reported where async code calls it
    return b""


async def init_db() -> None:
    sqlite3.connect("app.db")  # startup: HD203


async def warm_cache() -> None:
    requests.get("http://cache/warm")  # error: HD202


async def settings() -> dict[str, str]:
    time.sleep(1)  # error: HD201
    return {}


# ---- a FastAPI lifespan: before the yield is startup, after it shutdown -------------


@asynccontextmanager
async def lifespan(app: FastAPI):
    load_model()  # startup: HD201
    await init_db()  # awaited only from here: init_db is startup code
    await warm_cache()  # also awaited by a route: warm_cache runs on requests
    await settings()  # also a dependency: handed to FastAPI, runs on requests
    with ThreadPoolExecutor() as ex:  # shutdown: HD101
        yield
    pool.shutdown()  # shutdown: HD101
    time.sleep(1)  # shutdown: HD201


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(conf: dict[str, str] = Depends(settings)) -> bytes:
    time.sleep(1)  # error: HD201
    await warm_cache()
    return load_model()  # error: HD201


@app.on_event("startup")
async def on_start() -> None:
    time.sleep(2)  # startup: HD201


@app.on_event("shutdown")
async def on_stop() -> None:
    pool.shutdown()  # shutdown: HD101


# ---- Starlette's on_startup / on_shutdown lists --------------------------------------


async def star_start() -> None:
    requests.get("http://config")  # startup: HD202


async def star_stop() -> None:
    time.sleep(1)  # shutdown: HD201


star = Starlette(on_startup=[star_start], on_shutdown=[star_stop])


# ---- aiohttp's signals and cleanup contexts -------------------------------------------


async def aio_start(app: web.Application) -> None:
    time.sleep(1)  # startup: HD201


async def aio_cleanup(app: web.Application) -> None:
    time.sleep(1)  # shutdown: HD201


async def aio_ctx(app: web.Application):
    time.sleep(1)  # startup: HD201
    yield
    time.sleep(1)  # shutdown: HD201


aio = web.Application()
aio.on_startup.append(aio_start)
aio.on_cleanup.append(aio_cleanup)
aio.cleanup_ctx.append(aio_ctx)


# ---- an ASGI lifespan handler, and a main() that serves --------------------------------


async def asgi_app(scope, receive, send) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        time.sleep(1)  # startup: HD201
    elif message["type"] == "lifespan.shutdown":
        time.sleep(1)  # shutdown: HD201
    else:
        time.sleep(1)  # error: HD201


async def main() -> None:
    requests.get("http://config")  # startup: HD202
    server = uvicorn.Server(uvicorn.Config(app))
    await server.serve()
    time.sleep(1)  # shutdown: HD201


# ---- look-alikes that run on requests ---------------------------------------------------


@asynccontextmanager
async def session_scope():
    time.sleep(1)  # error: HD201
    yield
    time.sleep(1)  # error: HD201


async def background() -> None:
    time.sleep(1)  # error: HD201


@asynccontextmanager
async def lifespan_with_task(app: FastAPI):
    task = asyncio.create_task(background())  # runs while the server serves
    yield
    task.cancel()


other = FastAPI(lifespan=lifespan_with_task)
