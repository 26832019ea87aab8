"""Which request a stall belongs to: found on the stalled stack, nothing kept per request.

Plain ASGI apps under HangdoctorMiddleware on a real loop, watched by a real
LoopWatchdog; standard library only, so this file also runs on every Python
the package supports (`PYTHONPATH=src python -m pytest tests/runtime/test_inflight.py`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog, StallRecord
from hangdoctor.runtime.inflight import in_flight

THRESHOLD = 0.05
BLOCK = 0.3

Message = dict[str, Any]
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
_SSE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"cache-control", b"no-store"), (b"content-type", b"text/event-stream")],
}


def _scope(path: str, request_id: str = "") -> dict[str, Any]:
    headers = [(b"host", b"test")]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    return {"type": "http", "method": "GET", "path": path, "headers": headers}


class _Server:
    """The server side of one request: what the app sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.gone = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def _watched(body: Callable[[LoopWatchdog], Awaitable[None]]) -> list[StallRecord]:
    async def main() -> list[StallRecord]:
        async with LoopWatchdog(THRESHOLD, log=False) as dog:
            await asyncio.sleep(0.03)
            await body(dog)
            await asyncio.sleep(0.1)
        return [r for r in dog.records if r.duration >= BLOCK / 2]

    return asyncio.run(main())


def test_a_stall_in_the_request_task_names_the_request() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(_START)
        time.sleep(BLOCK)  # the stall, in the request's own task
        await send({"type": "http.response.body", "body": b"ok"})

    async def body(dog: LoopWatchdog) -> None:
        server = _Server()
        await HangdoctorMiddleware(app)(_scope("/own", "req-7"), server.receive, server.send)
        assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]

    (record,) = _watched(body)
    assert record.request is not None
    assert (record.request.path, record.request.request_id) == ("/own", "req-7")
    assert not record.request.streaming and not record.request.disconnected
    assert record.request.age_s is not None and 0 <= record.request.age_s < BLOCK
    assert record.in_flight == 1


def test_a_stall_in_a_child_task_that_sends_the_stream_names_the_request() -> None:
    """Starlette's StreamingResponse sends from a task-group task, through wrappers."""

    async def stream(send: Callable[[Message], Awaitable[None]]) -> None:
        await send(_SSE_START)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        time.sleep(BLOCK)  # the stall, in the child task
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def sender(message: Message) -> None:  # a framework's wrapper of send
            await send(message)

        await asyncio.create_task(functools.partial(stream, sender)())

    async def body(dog: LoopWatchdog) -> None:
        server = _Server()
        await HangdoctorMiddleware(app)(_scope("/child"), server.receive, server.send)

    (record,) = _watched(body)
    assert record.request is not None and record.request.path == "/child"
    assert record.request.streaming


def test_an_event_stream_stalled_before_its_first_event_is_a_stream() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(_SSE_START)
        time.sleep(BLOCK)  # before any event went out
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def body(dog: LoopWatchdog) -> None:
        server = _Server()
        await HangdoctorMiddleware(app)(_scope("/sse"), server.receive, server.send)

    (record,) = _watched(body)
    assert record.request is not None and record.request.streaming


def test_a_task_left_running_after_its_request_ended_is_not_that_request() -> None:
    left: list[asyncio.Task[None]] = []

    async def later(send: Any) -> None:
        await asyncio.sleep(0.05)
        time.sleep(BLOCK)  # after the request ended, though it still holds send

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        left.append(asyncio.create_task(later(send)))
        await send(_START)
        await send({"type": "http.response.body", "body": b"ok"})

    async def body(dog: LoopWatchdog) -> None:
        server = _Server()
        await HangdoctorMiddleware(app)(_scope("/gone"), server.receive, server.send)
        await left[0]

    (record,) = _watched(body)
    assert record.request is None


def test_requests_in_flight_are_counted_from_the_loops_tasks() -> None:
    async def body(dog: LoopWatchdog) -> None:
        gate = asyncio.Event()

        async def waiting(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await gate.wait()
            await send(_START)
            await send({"type": "http.response.body", "body": b""})

        async def blocking(scope: dict[str, Any], receive: Any, send: Any) -> None:
            time.sleep(BLOCK)
            gate.set()
            await send(_START)
            await send({"type": "http.response.body", "body": b""})

        loop = asyncio.get_running_loop()
        waiters = [
            asyncio.create_task(
                HangdoctorMiddleware(waiting)(_scope(f"/w{n}"), None, _Server().send)
            )
            for n in range(3)
        ]
        await asyncio.sleep(0.02)
        assert in_flight(loop) == 3
        await HangdoctorMiddleware(blocking)(_scope("/b"), None, _Server().send)
        await asyncio.gather(*waiters)
        assert in_flight(loop) == 0

    (record,) = _watched(body)
    assert record.request is not None and record.request.path == "/b"
    assert record.in_flight == 4


def test_a_plain_response_goes_straight_to_the_servers_send() -> None:
    """No coroutine of the middleware's own per message: the server's awaitable itself."""
    made: list[object] = []
    awaited: list[object] = []

    async def server_send(message: Message) -> None:
        return None

    def send(message: Message) -> Awaitable[None]:
        made.append(server_send(message))
        return made[-1]  # type: ignore[return-value]

    async def app(scope: dict[str, Any], receive: Any, send_: Any) -> None:
        for message in (_START, {"type": "http.response.body", "body": b"ok"}):
            step = send_(message)
            awaited.append(step)
            await step

    asyncio.run(HangdoctorMiddleware(app)(_scope("/plain"), None, send))
    assert len(made) == 2 and all(a is m for a, m in zip(awaited, made, strict=True))


def test_disconnects_are_noticed_from_receive_and_from_a_failing_send() -> None:
    async def listens(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(_SSE_START)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        assert (await receive())["type"] == "http.disconnect"

    async def writes(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(_SSE_START)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})

    async def main() -> HangdoctorMiddleware:
        mw = HangdoctorMiddleware(listens)
        server = _Server()
        server.gone.set()
        await mw(_scope("/a"), server.receive, server.send)
        assert (mw.disconnects, mw.open_streams) == (1, 0)

        calls = 0

        async def broken(message: Message) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise ConnectionResetError("client went away")

        mw.app = writes
        try:
            await mw(_scope("/b"), server.receive, broken)
        except ConnectionResetError:
            pass
        else:
            raise AssertionError("the send error must reach the app's caller")
        return mw

    mw = asyncio.run(main())
    assert (mw.disconnects, mw.open_streams) == (2, 0)
