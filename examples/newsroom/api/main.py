"""The newsroom app: `app` has the canonical SSE hang, `fixed_app` has it fixed by hand,
`safe_app` has it fixed with the `hangdoctor.executors` helpers.

Run it with `uvicorn api.main:app --app-dir examples/newsroom`. All three apps share
/health (async), /health/sync (a sync route, for thread-pool starvation),
/news/latest and the /causes/* routes that reproduce each catalog cause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.routes import causes, stream, stream_fixed, stream_safe
from api.upstream import SlowUpstream


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    upstream = SlowUpstream().start()
    app.state.upstream = upstream
    try:
        yield
    finally:
        upstream.stop()


def create_app(stream_router: APIRouter) -> FastAPI:
    app = FastAPI(title="newsroom", lifespan=_lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/sync")
    def health_sync() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/news/latest")
    async def latest() -> dict[str, str]:
        return {"headline": "all quiet"}

    app.include_router(stream_router)
    app.include_router(causes.router)
    return app


app = create_app(stream.router)
fixed_app = create_app(stream_fixed.router)
safe_app = create_app(stream_safe.router)
