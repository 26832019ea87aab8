"""The probe's HTTP/1.1 and SSE client: parsing, event counting, and how it drops a stream."""

from __future__ import annotations

import asyncio

import pytest

from hangdoctor.probe.sse_client import (
    Exchange,
    ResponseHead,
    SSECounter,
    _Chunked,
    build_request,
    open_exchange,
)


def test_chunked_decoding_byte_by_byte() -> None:
    """A chunked body decodes the same whether it arrives whole or one byte at a time."""
    wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
    whole = _Chunked()
    assert whole.feed(wire) == b"hello, world" and whole.done
    pieces = _Chunked()
    out = b"".join(pieces.feed(wire[i : i + 1]) for i in range(len(wire)))
    assert out == b"hello, world" and pieces.done


def test_sse_counter_counts_dispatched_events() -> None:
    """Blank lines end events; comments alone and extra blank lines dispatch nothing."""
    counter = SSECounter()
    stream = b"event: hello\r\ndata: a\r\n\r\n: keep-alive\n\n\n\ndata: b\ndata: c\n\ndata: d\n"
    for i in range(0, len(stream), 3):  # split across reads at awkward places
        counter.feed(stream[i : i + 3])
    assert counter.events == 2  # "d" has no blank line yet
    assert counter.feed(b"\n") == 1 and counter.events == 3


def test_build_request() -> None:
    """User headers are sent, Host/Connection stay ours, a body gets its length."""
    raw = build_request(
        "POST",
        "/s?x=1",
        "127.0.0.1:8000",
        headers=[("Authorization", "Bearer t"), ("Connection", "keep-alive"), ("Host", "evil")],
        body=b'{"q": 1}',
        accept="text/event-stream",
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /s?x=1 HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines and "Host: evil" not in lines
    assert "Connection: close" in lines and "Connection: keep-alive" not in lines
    assert "Authorization: Bearer t" in lines and "Accept: text/event-stream" in lines
    assert "Content-Length: 8" in lines and body == b'{"q": 1}'


def test_response_head() -> None:
    """Header lookup is case-insensitive and the content type ignores parameters."""
    head = ResponseHead(200, "OK", (("content-type", "text/event-stream; charset=utf-8"),))
    assert head.is_event_stream and head.get("Content-Type") is not None
    assert not ResponseHead(200, "OK", ()).is_event_stream


async def _serve_sse(seen: list[str]) -> tuple[asyncio.AbstractServer, int]:
    """A real asyncio server: sends two chunked events, then records how the client left."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        head += b"transfer-encoding: chunked\r\n\r\n"
        chunks = [b"data: one\n\n", b"data: two\n\n"]
        writer.write(head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks))
        await writer.drain()
        try:
            data = await asyncio.wait_for(reader.read(100), 5)
            seen.append("eof" if data == b"" else "data")
        except ConnectionResetError:
            seen.append("reset")
        except asyncio.TimeoutError:
            seen.append("nothing")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(("reset", "expected"), [(True, "reset"), (False, "eof")])
def test_stream_drop_is_rst_or_fin(reset: bool, expected: str, loop: str) -> None:
    """close(reset=True) reaches the server as a connection reset, close() as an EOF."""

    async def scenario() -> tuple[Exchange, list[str]]:
        seen: list[str] = []
        server, port = await _serve_sse(seen)
        async with server:
            request = build_request("GET", "/s", f"127.0.0.1:{port}", accept="text/event-stream")
            exchange = await open_exchange(
                "127.0.0.1",
                port,
                request,
                ssl_context=None,
                server_hostname=None,
                count_events=True,
                timeout=5,
            )
            head = await asyncio.wait_for(exchange.head, 5)
            assert head.status == 200 and head.is_event_stream
            for _ in range(100):
                if exchange.events == 2:
                    break
                await asyncio.sleep(0.01)
            exchange.close(reset=reset)
            for _ in range(500):
                if seen:
                    break
                await asyncio.sleep(0.01)
        return exchange, seen

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        exchange, seen = uvloop.run(scenario())
    else:
        exchange, seen = asyncio.run(scenario())
    assert exchange.events == 2 and exchange.first_event_at is not None
    assert seen == [expected]


def test_connection_closed_before_headers() -> None:
    """A server that hangs up without answering fails `head` with a connection error."""

    async def scenario() -> BaseException | None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            exchange = await open_exchange(
                "127.0.0.1",
                port,
                build_request("GET", "/", "x"),
                ssl_context=None,
                server_hostname=None,
                timeout=5,
            )
            await asyncio.wait_for(exchange.done, 5)
            return exchange.head.exception()

    assert isinstance(asyncio.run(scenario()), ConnectionError)


def test_chunked_rejects_a_wrong_size() -> None:
    """A chunk whose size does not match its data is an error, not silently misread."""
    with pytest.raises(ValueError):
        _Chunked().feed(b"d\r\ndata: one\n\n\r\nd\r\ndata: two\n\n\r\n")
