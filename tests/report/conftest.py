"""Hand-built diagnoses for the renderers: the model is plain data, the renderers are under test.

Paths and frames are shaped like real py-spy captures of a uvicorn worker
(CPython 3.12, an app in /srv/app).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from hangdoctor.model import (
    Diagnosis,
    Finding,
    Frame,
    Local,
    LoopKind,
    LoopReport,
    LoopState,
    Verdict,
    WaitTarget,
)

STDLIB = "/usr/lib/python3.12"
SITE = "/srv/app/.venv/lib/python3.12/site-packages"
APP = "/srv/app"


def std(function: str, rel: str, line: int) -> Frame:
    return Frame(function, f"{STDLIB}/{rel}", line, short_file=rel)


def site(function: str, rel: str, line: int) -> Frame:
    return Frame(function, f"{SITE}/{rel}", line, short_file=rel)


def app(function: str, rel: str, line: int) -> Frame:
    return Frame(function, f"{APP}/{rel}", line, short_file=rel)


# What runs a request handler under uvicorn: everything outer to the user's frame.
OUTER = (
    site("StreamingResponse.__call__.<locals>.wrap", "starlette/responses.py", 281),
    site("TaskGroup._spawn.<locals>.task_done", "anyio/_backends/_asyncio.py", 783),
    site("ExceptionMiddleware.__call__", "starlette/middleware/exceptions.py", 62),
    site(
        "wrap_app_handling_exceptions.<locals>.wrapped_app", "starlette/_exception_handler.py", 53
    ),
    site("Router.__call__", "starlette/routing.py", 715),
    site("ServerErrorMiddleware.__call__", "starlette/middleware/errors.py", 165),
    site("RequestResponseCycle.run_asgi", "uvicorn/protocols/http/h11_impl.py", 403),
    std("Handle._run", "asyncio/events.py", 88),
    std("BaseEventLoop._run_once", "asyncio/base_events.py", 1987),
    std("BaseEventLoop.run_forever", "asyncio/base_events.py", 641),
    std("BaseEventLoop.run_until_complete", "asyncio/base_events.py", 674),
    std("Runner.run", "asyncio/runners.py", 118),
    std("run", "asyncio/runners.py", 194),
    site("Server.run", "uvicorn/server.py", 65),
    site("run", "uvicorn/main.py", 587),
    site("main", "uvicorn/main.py", 412),
    site("Command.invoke", "click/core.py", 1434),
)
OUTER_PACKAGES = ("starlette", "anyio", "uvicorn", "asyncio", "click")

JOINED = 0x7F3A2C1B4D90  # the worker Thread object the loop joins


def _blocked_finding() -> Finding:
    stack = (
        Frame(
            "Thread._wait_for_tstate_lock",
            f"{STDLIB}/threading.py",
            1167,
            short_file="threading.py",
            locals=(Local("self", "<Thread(ThreadPoolExecutor-0_0)>", JOINED, True),),
        ),
        std("Thread.join", "threading.py", 1147),
        std("ThreadPoolExecutor.shutdown", "concurrent/futures/thread.py", 239),
        std("Executor.__exit__", "concurrent/futures/_base.py", 647),
        app("news_stream.<locals>.gen", "api/routes/stream.py", 38),
        *OUTER,
    )
    return Finding(
        code="HD101",
        message=(
            "Leaving the `with` executor block at api/routes/stream.py:35 runs "
            "shutdown(wait=True) on the loop; it waits for worker thread "
            "ThreadPoolExecutor-0_0 (tid 3736), joined, in fetch_news at "
            "api/routes/stream.py:25 (stuck for at least 2.0 s)."
        ),
        file=f"{APP}/api/routes/stream.py",
        line=35,
        function="news_stream.<locals>.gen",
        pid=3731,
        thread="MainThread",
        tid=3731,
        blocked_for_s=2.004,
        state=LoopState.BLOCKED,
        source="with ThreadPoolExecutor(max_workers=2) as ex:",
        waits_for=WaitTarget(
            description=(
                "worker thread ThreadPoolExecutor-0_0 (tid 3736), joined, in fetch_news at "
                "api/routes/stream.py:25"
            ),
            thread_name="ThreadPoolExecutor-0_0",
            tid=3736,
            function="fetch_news",
            file=f"{APP}/api/routes/stream.py",
            line=25,
            source="time.sleep(delay)  # the slow upstream call",
        ),
        stack=stack,
        user_frame_index=4,
    )


@pytest.fixture
def blocked() -> Diagnosis:
    """HD101 on pid 3731; a second worker (pid 3740) is healthy."""
    return Diagnosis(
        verdict=Verdict.BLOCKED,
        loops=(
            LoopReport(3731, 3731, "MainThread", LoopKind.ASYNCIO, LoopState.BLOCKED, 2.004),
            LoopReport(3740, 3740, "MainThread", LoopKind.ASYNCIO, LoopState.IDLE),
        ),
        findings=(_blocked_finding(),),
        pids=(3731, 3740),
        samples=3,
        sampled_for_s=2.004,
    )


@pytest.fixture
def http_blocked() -> Diagnosis:
    """HD202: requests.get on the loop, with the requests/urllib3 frames inner to the user's."""
    stack = (
        std("SocketIO.readinto", "socket.py", 707),
        std("HTTPResponse._read_status", "http/client.py", 292),
        site("HTTPConnectionPool._make_request", "urllib3/connectionpool.py", 534),
        site("HTTPConnectionPool.urlopen", "urllib3/connectionpool.py", 793),
        site("HTTPAdapter.send", "requests/adapters.py", 589),
        site("Session.send", "requests/sessions.py", 703),
        site("Session.request", "requests/sessions.py", 589),
        site("request", "requests/api.py", 59),
        site("get", "requests/api.py", 73),
        app("weather", "api/routes/weather.py", 14),
        *OUTER[2:],
    )
    finding = Finding(
        code="HD202",
        message="requests.get in weather at api/routes/weather.py:14 blocks the loop.",
        file=f"{APP}/api/routes/weather.py",
        line=14,
        function="weather",
        pid=51,
        thread="MainThread",
        tid=51,
        blocked_for_s=None,
        state=LoopState.BLOCKED,
        source="r = requests.get(UPSTREAM, timeout=30)",
        stack=stack,
        user_frame_index=9,
    )
    return Diagnosis(
        verdict=Verdict.BLOCKED,
        loops=(LoopReport(51, 51, "MainThread", LoopKind.ASYNCIO, LoopState.BLOCKED),),
        findings=(finding,),
        pids=(51,),
        samples=1,
        notes=("Only one sample per process: capture several samples.",),
    )


@pytest.fixture
def busy() -> Diagnosis:
    """HD501: pure-Python work on the loop (uvloop: no Python loop frames)."""
    stack = (
        app("_rank", "api/routes/score.py", 112),
        app("score", "api/routes/score.py", 123),
        site("run_endpoint_function", "fastapi/routing.py", 212),
        site("get_request_handler.<locals>.app", "fastapi/routing.py", 301),
        std("Runner.run", "asyncio/runners.py", 118),
        std("run", "asyncio/runners.py", 194),
    )
    finding = Finding(
        code="HD501",
        message="CPU work in _rank at api/routes/score.py:112 keeps the loop busy.",
        file=f"{APP}/api/routes/score.py",
        line=112,
        function="_rank",
        pid=77,
        thread="MainThread",
        tid=77,
        blocked_for_s=2.5,
        state=LoopState.BUSY,
        source="for i, word in enumerate(words):",
        stack=stack,
        user_frame_index=0,
    )
    return Diagnosis(
        verdict=Verdict.BUSY,
        loops=(LoopReport(77, 77, "MainThread", LoopKind.UVLOOP, LoopState.BUSY, 2.5),),
        findings=(finding,),
        pids=(77,),
        samples=4,
        sampled_for_s=2.5,
    )


@pytest.fixture
def starved() -> Diagnosis:
    """HD401: the loop is idle, all 40 AnyIO worker threads sit in a sync route."""
    stack = (
        app("slow_sync_report", "api/routes/reports.py", 136),
        site("run_endpoint_function", "fastapi/routing.py", 214),
        site("WorkerThread.run", "anyio/_backends/_asyncio.py", 1124),
        std("Thread._bootstrap_inner", "threading.py", 1073),
        std("Thread._bootstrap", "threading.py", 1030),
    )
    finding = Finding(
        code="HD401",
        message=(
            "40 of 40 AnyIO worker threads are busy (40 in slow_sync_report at "
            "api/routes/reports.py:136); sync routes, a sync /health included, queue for a thread."
        ),
        file=f"{APP}/api/routes/reports.py",
        line=136,
        function="slow_sync_report",
        pid=90,
        thread="MainThread",
        tid=90,
        state=LoopState.STARVED,
        source="time.sleep(seconds)",
        waits_for=WaitTarget(description="a free AnyIO worker thread (40 of 40 busy, limit 40)"),
        stack=stack,
        user_frame_index=0,
    )
    loop = LoopReport(
        90, 90, "MainThread", LoopKind.ASYNCIO, LoopState.STARVED, busy_workers=40, total_workers=40
    )
    return Diagnosis(
        verdict=Verdict.STARVED,
        loops=(loop,),
        findings=(finding,),
        pids=(90,),
        samples=3,
        sampled_for_s=1.1,
    )


@pytest.fixture
def healthy() -> Diagnosis:
    """Two idle loops, and notes the reader should see."""
    return Diagnosis(
        verdict=Verdict.HEALTHY,
        loops=(
            LoopReport(123, 123, "MainThread", LoopKind.ASYNCIO, LoopState.IDLE),
            LoopReport(124, 124, "MainThread", LoopKind.UVLOOP, LoopState.IDLE),
        ),
        findings=(),
        pids=(122, 123, 124),
        samples=3,
        sampled_for_s=1.0,
        notes=(
            "pid 122 runs no event loop (gunicorn master): a supervisor, not an asyncio server.",
        ),
    )


def with_user_locals(diagnosis: Diagnosis, *, redacted: bool) -> Diagnosis:
    """The diagnosis with a token among its first finding's user-frame locals, as captured
    with --locals: masked when `redacted`, else as --show-secrets shows it."""
    finding = diagnosis.findings[0]
    user = finding.user_frame_index
    assert user is not None
    stack = list(finding.stack)
    token = Local("api_token", "<redacted>" if redacted else "'nr-0123456789abcdef'")
    stack[user] = replace(stack[user], locals=(token,))
    changed = replace(finding, stack=tuple(stack))
    return replace(diagnosis, findings=(changed,), secrets_redacted=redacted)
