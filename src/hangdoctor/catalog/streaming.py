"""HD3xx: streaming responses (SSE, chunked) that misbehave when clients leave."""

from __future__ import annotations

from hangdoctor.catalog.rule import Rule

RULES = (
    Rule(
        code="HD301",
        name="stream-ignores-disconnect",
        effect="keeps streaming after the client has gone",
        summary="A streaming response generator never checks whether the client is still there.",
        why=(
            "A generator behind `StreamingResponse` or `EventSourceResponse` keeps running "
            "after the client has gone until the server cancels it at its next `await`. "
            "Work it started (executor jobs, upstream requests) keeps going, and its cleanup "
            "runs at an arbitrary point, often inside a blocking `__exit__`. Under load the "
            "orphaned work piles up and starves the service; combined with HD101 one "
            "disconnect freezes the loop."
        ),
        bad="""\
async def gen():
    while True:
        item = await next_item()
        yield f"data: {item}\\n\\n"

return StreamingResponse(gen(), media_type="text/event-stream")
""",
        good="""\
async def gen(request: Request):
    while not await request.is_disconnected():
        item = await next_item()
        yield f"data: {item}\\n\\n"

return StreamingResponse(gen(request), media_type="text/event-stream")
""",
        fix=(
            "Check `await request.is_disconnected()` in the loop (or use a helper that does), "
            "cancel pending work in `finally`, and keep cleanup non-blocking."
        ),
        fix_min_python="3.7",
        fix_safety="Unsafe as an automatic fix: the generator needs the request object.",
        live=False,
        sinks=(
            "starlette.responses.StreamingResponse",
            "fastapi.responses.StreamingResponse",
            "sse_starlette.EventSourceResponse",
            "sse_starlette.sse.EventSourceResponse",
        ),
        guards=("disconnect",),  # request.is_disconnected(), "http.disconnect", a helper
        severity="warning",
    ),
    Rule(
        code="HD302",
        name="stream-swallows-cancellation",
        effect="swallows the cancellation that ends the stream",
        summary="A streaming generator catches CancelledError (or BaseException) and goes on.",
        why=(
            "When a client disconnects, the server cancels the response task by raising "
            "`asyncio.CancelledError` in the generator. A bare `except:`, "
            "`except BaseException` or `except CancelledError` that does not re-raise keeps "
            "the generator alive: it goes on producing for nobody, holds its resources, and "
            "the server's task group cannot finish the response."
        ),
        bad="""\
async def gen():
    while True:
        try:
            yield f"data: {await next_item()}\\n\\n"
        except asyncio.CancelledError:
            log.info("client left")  # swallowed: the loop goes on
""",
        good="""\
async def gen():
    try:
        while True:
            yield f"data: {await next_item()}\\n\\n"
    except asyncio.CancelledError:
        log.info("client left")
        raise  # let cancellation finish the response
""",
        fix="Re-raise `CancelledError` after cleanup, or use `try/finally` for the cleanup.",
        fix_min_python="3.7",
        fix_safety="Safe to add `raise` at the end of the handler.",
        live=False,
        sinks=(
            "starlette.responses.StreamingResponse",
            "fastapi.responses.StreamingResponse",
            "sse_starlette.EventSourceResponse",
            "sse_starlette.sse.EventSourceResponse",
        ),
        severity="warning",
    ),
)
