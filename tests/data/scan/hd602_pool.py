# ruff: noqa
"""HD602: pooled connections (streamed responses, sessions) not given back on every path."""

import contextlib

import aiohttp
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

upstream = httpx.AsyncClient(base_url="http://upstream")
engine = create_async_engine("postgresql+asyncpg://db/app")
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def feed() -> StreamingResponse:
    request = upstream.build_request("GET", "/events")
    response = await upstream.send(request, stream=True)  # error: HD602
    return StreamingResponse(response.aiter_raw(), media_type="text/event-stream")


async def read_then_close() -> bytes:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)  # error: HD602
    body = await response.aread()
    await response.aclose()  # not in a `finally`: a cancellation above skips it
    return body


async def dropped() -> None:
    await upstream.send(upstream.build_request("GET", "/ping"), stream=True)  # error: HD602


async def with_client(url: str) -> int:
    async with httpx.AsyncClient() as client:
        r = await client.send(client.build_request("GET", url), stream=True)  # error: HD602
        return r.status_code


class Relay:
    def __init__(self) -> None:
        self.client = httpx.AsyncClient()

    async def head(self, url: str) -> int:
        r = await self.client.send(self.client.build_request("GET", url), stream=True)  # error: HD602
        if r.status_code != 200:
            raise RuntimeError(r.status_code)
        return r.status_code


async def aiohttp_unread(session: aiohttp.ClientSession, url: str) -> int:
    resp = await session.get(url)  # error: HD602
    return resp.status


async def session_not_closed() -> list[int]:
    session = SessionLocal()  # error: HD602
    result = await session.execute("SELECT 1")
    await session.commit()
    return list(result.scalars())


async def session_closed_late() -> None:
    session = AsyncSession(engine)  # error: HD602
    await session.execute("SELECT 1")
    await session.close()


async def connection_not_closed() -> None:
    conn = await engine.connect()  # error: HD602
    await conn.execute("SELECT 1")


# ---- look-alikes that are fine ------------------------------------------------------


async def streamed_with_async_with() -> None:
    async with upstream.stream("GET", "/events") as response:
        async for chunk in response.aiter_raw():
            print(chunk)


async def closed_in_finally() -> bytes:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def closed_on_failure_and_success() -> None:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    try:
        async for chunk in response.aiter_bytes():
            print(chunk)
    except BaseException:
        await response.aclose()
        raise
    await response.aclose()


async def closed_on_errors_only() -> None:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)  # error: HD602
    try:
        print(response.status_code)
    except Exception:  # not a cancellation
        await response.aclose()
        raise
    await response.aclose()


async def opened_in_try() -> None:
    response = None
    try:
        response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
        print(response.status_code)
    finally:
        if response is not None:
            await response.aclose()


async def returned_to_the_caller() -> httpx.Response:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    return response  # the caller's to close


async def closed_by_the_response() -> StreamingResponse:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    return StreamingResponse(response.aiter_raw(), background=BackgroundTask(response.aclose))


async def exit_stack() -> None:
    async with contextlib.AsyncExitStack() as stack:
        response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
        stack.push_async_callback(response.aclose)
        print(response.status_code)


async def entered_later() -> None:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    async with response:
        print(response.status_code)


async def not_streamed() -> int:
    response = await upstream.send(upstream.build_request("GET", "/"))
    return response.status_code


async def stream_flag_unknown(stream: bool) -> int:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=stream)
    return response.status_code


async def handed_on() -> None:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)
    await relay_to_client(response)


async def relay_to_client(response: httpx.Response) -> None:
    await response.aclose()


async def unknown_client(client: object) -> int:
    response = await client.send(None, stream=True)  # type of `client` not known
    return response.status_code


async def aiohttp_read(session: aiohttp.ClientSession, url: str) -> str:
    resp = await session.get(url)
    return await resp.text()  # reading the body gives the connection back


async def aiohttp_released(session: aiohttp.ClientSession, url: str) -> int:
    resp = await session.post(url)
    resp.release()
    return resp.status


async def aiohttp_with(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        return resp.status


async def aiohttp_fire_and_forget(session: aiohttp.ClientSession, url: str) -> None:
    await session.post(url)  # dropped: aiohttp gives it back when it is collected


async def session_with() -> None:
    async with SessionLocal() as session:
        await session.execute("SELECT 1")


async def session_finally() -> None:
    session = SessionLocal()
    try:
        await session.execute("SELECT 1")
    finally:
        await session.close()


async def session_begin() -> None:
    session = SessionLocal()
    async with session.begin():
        await session.execute("SELECT 1")


async def session_dependency():
    session = SessionLocal()
    try:
        yield session
    finally:
        await session.close()


async def session_returned() -> AsyncSession:
    session = AsyncSession(engine)
    return session


async def connection_with() -> None:
    async with engine.connect() as conn:
        await conn.execute("SELECT 1")


async def nested_cleanup() -> StreamingResponse:
    response = await upstream.send(upstream.build_request("GET", "/"), stream=True)

    async def body():
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    return StreamingResponse(body())


def sync_code() -> None:
    session = SessionLocal()  # no `await` here: sync code is not where tasks wait
