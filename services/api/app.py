"""The api process: read API, connect flow and sync status (SPEC §3.1, §3.2).

`create_app(settings)` is the standalone app. `serve` mounts the same parts next to the webhook's:
`install_api(app)` adds the routers and the error form, and `build_api_state(settings, ctx)` builds
`app.state.api` from the shared context inside its own lifespan.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import structlog
from arq.connections import ArqRedis
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from common import tracing
from common.auth import TokenVerifier
from common.config import Settings
from common.http_ops import Check, ops_router, ping_database, ping_redis
from common.queue import ArqQueue, Queue
from common.sync.context import SyncContext, build_context
from common.sync.jobs.backfill import run_backfill
from common.sync.oplog import tag_calls
from common.types import Trigger
from common.usershare import create_user_share
from services.api.console.routes import install_console
from services.api.deps import ApiState
from services.api.errors import install_error_handlers
from services.api.reads import SmartReader
from services.api.routes import admin, export, feed, smart, whoop
from services.api.streams import create_stream_slots

log = structlog.get_logger()

DESCRIPTION = (
    "WHOOP data (recovery, sleep, cycle, workout) served from a cache kept fresh by webhooks, "
    "with a per-type staleness threshold and `force_refresh` as the safety net. Every error is "
    '`{"status": "error", "error": {"code", "message"}}`.'
)


class BackgroundBackfill:
    """Runs `backfill_user` in a task of this process when no queue is given (api without Redis)."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, job_name: str, *args: Any, _defer_by: float | None = None) -> None:
        """Start the backfill of a user now; other jobs are the worker's."""
        if job_name != "backfill_user":
            raise ValueError(f"{job_name} needs a queue")
        task = asyncio.create_task(self._backfill(uuid.UUID(str(args[0]))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def waiting_since(self) -> float | None:
        """Never: a backfill starts at once."""
        return None

    async def _backfill(self, user_id: uuid.UUID) -> None:
        tag_calls(Trigger.BACKFILL)
        try:
            await run_backfill(self.ctx, user_id)
        except Exception:
            log.exception("backfill.failed", user_id=str(user_id))

    async def close(self) -> None:
        """Cancel backfills still running (the reconciliation sweep finishes the job later)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def build_api_state(settings: Settings, ctx: SyncContext, queue: Queue | None = None) -> ApiState:
    """The api's state over the shared context; `queue` defaults to arq on the context's Redis."""
    if queue is None:
        queue = ArqQueue(cast(ArqRedis, ctx.redis)) if ctx.redis else BackgroundBackfill(ctx)
    return ApiState(
        settings=settings,
        session_factory=ctx.session_factory,
        lookups=ctx.lookups,
        verifier=TokenVerifier(settings, ctx.http),
        reader=SmartReader(
            ctx.session_factory,
            settings,
            ctx.locks,
            ctx.service,
            limiter=ctx.limiter,
            share=create_user_share(settings, ctx.redis),
        ),
        whoop=ctx.whoop,
        oauth=ctx.oauth,
        cipher=ctx.cipher,
        tokens=ctx.tokens,
        queue=queue,
        streams=create_stream_slots(settings.sse_max_per_user, ctx.redis),
    )


# /docs and /redoc load their scripts and styles from the installed package (fastapi-offline),
# not from a CDN: they work wherever the api is reachable.
DOCS_ASSETS = "/docs/assets"


def install_api(app: FastAPI) -> None:
    """Add the api's routers and the error form to an app (standalone or `serve`)."""
    install_error_handlers(app)
    app.include_router(smart.router)
    app.include_router(feed.router)
    app.include_router(whoop.router)
    app.include_router(export.router)
    app.include_router(admin.router)
    install_console(app)


async def _database(request: Request) -> None:
    await ping_database(request.app.state.context.engine)


async def _redis(request: Request) -> None:
    await ping_redis(request.app.state.context.redis)


def readiness_checks(settings: Settings) -> dict[str, Check]:
    """What `/readyz` asks: the database, and Redis when configured."""
    checks: dict[str, Check] = {"database": _database}
    if settings.redis_url:
        checks["redis"] = _redis
    return checks


def check_settings(settings: Settings) -> None:
    """ConfigError (one line) unless WHOOP, token encryption and bearer auth are configured."""
    settings.require(
        "whoop_client_id", "whoop_client_secret", "whoop_redirect_uri", "token_encryption_key"
    )
    if not settings.jwt_jwks_url:
        settings.require("jwt_secret")


def create_app(settings: Settings) -> FastAPI:
    """The standalone api app; its lifespan opens the shared context and closes it on the way out.

    It needs Redis (SPEC §2): the budget, the token-refresh lock and the read single flight are
    shared with the worker; only `serve` runs without it.
    """
    check_settings(settings)
    settings.require("redis_url")
    tracing.configure("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await build_context(settings)
        state: ApiState | None = None
        try:
            state = build_api_state(settings, ctx)
            app.state.context, app.state.api = ctx, state
            if ctx.redis is not None:
                ctx.feed.use_queue(state.queue)
            yield
        finally:
            if state is not None and isinstance(state.queue, BackgroundBackfill):
                await state.queue.close()
            await ctx.close()

    app = FastAPIOffline(
        title="whoop-sync api",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
    )
    install_api(app)
    app.include_router(ops_router(readiness_checks(settings)))
    tracing.instrument_app(app)
    return app
