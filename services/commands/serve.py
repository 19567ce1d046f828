"""`whoop-sync serve`: webhook, api and worker in one process, for one machine.

Without `WHOOPSYNC_REDIS_URL` the jobs run in-process (the embedded mode) over the same job
functions and crons as the arq worker; with it, an arq worker runs inside this process and other
processes may share the queue. On SQLite (the embedded default) the schema is brought to head at
start; PostgreSQL is migrated by `whoop-sync migrate`, never by a serving process.
"""

from __future__ import annotations

import argparse
import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from common import tracing
from common.config import Settings
from common.db.migrate import upgrade_async
from common.http_ops import ops_router
from common.queue import ArqQueue, InProcessQueue, Queue
from common.serving import add_listen_arguments, run_app
from common.sync.context import SyncContext, build_context
from common.sync.jobs import CRONS, JOBS
from common.sync.jobs.sweep import resume_pending
from services.api.app import (
    DESCRIPTION,
    DOCS_ASSETS,
    build_api_state,
    check_settings,
    install_api,
    readiness_checks,
)
from services.webhook.app import webhook_router
from services.webhook.deps import WebhookState

log = structlog.get_logger(__name__)


class _Jobs:
    """The job runner of a serve process: in-process queue and crons, or an arq worker."""

    def __init__(self, settings: Settings, ctx: SyncContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.queue: Queue
        self._local: InProcessQueue | None = None
        self._worker: Any = None
        self._worker_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start running jobs and crons."""
        if self.ctx.redis is not None:
            from services.worker.settings import create_worker

            self.queue = ArqQueue(self.ctx.redis)  # type: ignore[arg-type]
            self._worker = create_worker(self.settings, handle_signals=False)
            self._worker_task = asyncio.create_task(self._worker.async_run())
            return
        local = InProcessQueue(JOBS, {"sync": self.ctx})
        local.start()
        for spec in CRONS:
            local.every(spec.every(self.settings), spec.func, timeout=spec.timeout, name=spec.name)
        self.queue = self._local = local

    async def close(self) -> None:
        """Stop the runner; unfinished work stays recorded for the sweeper."""
        if self._local is not None:
            await self._local.close()
        if self._worker is not None:
            with warnings.catch_warnings():
                # arq closes its pool with redis-py's deprecated close(); the pool is closed all the same.
                warnings.simplefilter("ignore", DeprecationWarning)
                await self._worker.close()
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)


def create_app(settings: Settings) -> FastAPI:
    """The all-in-one app: the api's routes and the webhook route over one shared context."""
    check_settings(settings)
    assert settings.whoop_client_secret is not None  # checked by require()
    secret = settings.whoop_client_secret.get_secret_value().encode()
    tracing.configure("serve")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.is_postgres:
            await upgrade_async(settings.database_url)
        ctx = await build_context(settings)
        jobs = _Jobs(settings, ctx)
        try:
            jobs.start()
            if ctx.redis is None:  # the in-process queue of the last run is gone: hand on again
                try:
                    await resume_pending(jobs.queue, ctx.session_factory)
                except Exception as exc:  # the database is away: the sweeper hands them on later
                    log.warning("serve.resume_failed", error=type(exc).__name__)
            ctx.feed.use_queue(jobs.queue)
            app.state.context = ctx
            app.state.redis = ctx.redis
            app.state.api = build_api_state(settings, ctx, jobs.queue)
            app.state.webhook = WebhookState(
                secret=secret,
                tolerance_seconds=settings.webhook_tolerance_seconds,
                engine=ctx.engine,
                session_factory=ctx.session_factory,
                queue=jobs.queue,
            )
            log.info("serve.started", embedded=ctx.redis is None)
            yield
        finally:
            await jobs.close()
            await ctx.close()

    app = FastAPIOffline(
        title="whoop-sync",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
    )
    install_api(app)
    app.include_router(webhook_router())
    app.include_router(ops_router(readiness_checks(settings)))
    tracing.instrument_app(app)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen."""
    add_listen_arguments(parser, 8001)


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    return run_app(create_app, args.host, args.port)
