"""The pipeline under test over real HTTP: the simulator (WHOOP), the webhook receiver, and the jobs
on either backend (PostgreSQL + arq on Redis, or SQLite + the in-process queue)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import func, select

from common.config import Settings
from common.db.models import WebhookEvent
from common.db.repositories import ConnectionRepository, RecordRepository
from common.db.types import utcnow
from common.queue import ArqQueue, InProcessQueue, arq_redis
from common.sync.context import SyncContext, build_context
from common.sync.inbox import Inbox
from common.sync.jobs import JOBS, job_context
from common.sync.jobs.sweep import hand_off
from common.types import DataType
from services.simulator.config import SimConfig
from services.simulator.server import RunningSim, serve_app, serve_in_background
from services.simulator.webhooks import signature as sim_signature
from services.webhook.app import create_app, webhook_router
from services.webhook.deps import WebhookState
from services.worker.settings import create_worker
from tests import connect_flow

CLIENT_ID, CLIENT_SECRET = "pipeline-client", "pipeline-secret"
REDIRECT = "http://app.test/api/v1/whoop/callback"
ENCRYPTION_KEY = Fernet.generate_key().decode()
SLEEP_BY_ID = "GET /v2/activity/sleep/{sleepId}"


def make_settings(
    database_url: str, redis_url: str | None, sim_base: str, **extra: Any
) -> Settings:
    """Settings pointing at the simulator, with a budget no test reaches."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "whoop_api_base_url": f"{sim_base}/developer",
        "whoop_oauth_base_url": f"{sim_base}/oauth/oauth2",
        "whoop_client_id": CLIENT_ID,
        "whoop_client_secret": CLIENT_SECRET,
        "whoop_redirect_uri": REDIRECT,
        "token_encryption_key": ENCRYPTION_KEY,
        "whoop_rate_limit_per_minute": 1_000_000,
        "whoop_rate_limit_per_day": 10_000_000,
        "inbox_sweep_seconds": 1,
        "log_format": "console",
    }
    return Settings(**(values | extra))


def sim_config(webhook_url: str | None, users: int = 3, days: int = 14) -> SimConfig:
    """A small simulated world that signs webhooks with the test app's secret."""
    return SimConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        users=users,
        days=days,
        seed=11,
        webhook_url=webhook_url,
        rate_limit_per_minute=1_000_000,
        rate_limit_per_day=10_000_000,
        webhook_retry_delays=(0.05,) * 5,
        webhook_concurrency=64,
    )


def signed(
    body: dict[str, Any], secret: str = CLIENT_SECRET, at_ms: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and headers signed the way the simulator (WHOOP's stand-in) signs them."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    stamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
    headers = {
        "content-type": "application/json",
        "x-whoop-signature-timestamp": stamp,
        "x-whoop-signature": sim_signature(secret, stamp, raw),
    }
    return raw, headers


@dataclass
class Pipeline:
    """A running pipeline: `post` webhooks, `drain` the jobs, then look at rows and calls."""

    backend: str
    settings: Settings
    sim: RunningSim
    ctx: SyncContext
    webhook_url: str
    http: httpx.AsyncClient
    users: dict[int, uuid.UUID] = field(default_factory=dict)
    inproc: InProcessQueue | None = None
    holder: dict[str, Any] = field(default_factory=dict)

    def use_queue(self, queue: Any) -> None:
        """Make the receiver hand events to another queue (None: nowhere)."""
        state = self.holder["app"].state.webhook
        self.holder["app"].state.webhook = dataclasses.replace(state, queue=queue)

    def job_ctx(self, queue: Any) -> dict[str, Any]:
        """The ctx a cron or job gets, with this queue."""
        return job_context(self.ctx, queue)

    def env(self) -> dict[str, str]:
        """The settings as WHOOPSYNC_* variables, for a subprocess."""
        values = self.settings.model_dump(exclude_none=True)
        env = {}
        for name, value in values.items():
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            env[f"WHOOPSYNC_{name.upper()}"] = str(raw)
        return env

    async def connect(self, whoop_user_id: int) -> uuid.UUID:
        """Run the OAuth flow against the simulator and store the connection, as the API would."""
        authorize = self.ctx.oauth.authorization_url("abcdefgh")
        redirect = await connect_flow.approve(self.http, authorize, whoop_user_id)
        tokens = await self.ctx.oauth.exchange_code(connect_flow.query_of(redirect)["code"])
        user_id = uuid.uuid4()
        async with self.ctx.session_factory() as session:
            await ConnectionRepository(session).save(
                user_id=user_id,
                whoop_user_id=whoop_user_id,
                access_token_enc=self.ctx.cipher.encrypt(tokens.access_token),
                refresh_token_enc=self.ctx.cipher.encrypt(tokens.refresh_token or ""),
                expires_at=tokens.expires_at,
                scopes=tokens.scope,
            )
            await session.commit()
        self.users[whoop_user_id] = user_id
        self.sim.sim.world.connected.add(whoop_user_id)
        return user_id

    async def post(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        """POST one signed webhook to the receiver over HTTP."""
        raw, headers = signed(body, **kwargs)
        return await self.http.post(self.webhook_url, content=raw, headers=headers)

    async def send_from_sim(self, whoop_user_id: int, event_type: str, record_id: str) -> None:
        """Have the simulator deliver an event (its own signature and trace id)."""
        sent = await self.http.post(
            f"{self.sim.base_url}/_sim/webhooks",
            json={"user_id": whoop_user_id, "type": event_type, "id": record_id},
        )
        assert sent.status_code == 202, sent.text
        async with asyncio.timeout(20):
            await self.sim.sim.webhooks.wait_idle()

    async def drain(self) -> None:
        """Run every queued job to the end (a burst arq worker, or the in-process queue)."""
        if self.inproc is not None:
            async with asyncio.timeout(60):
                await self.inproc.join()
            return
        await run_burst_worker(self.settings)

    async def sweep(self) -> int:
        """Hand on every pending event at once, as the sweeper does after INBOX_SWEEP_SECONDS (what
        Redis could not take within the webhook's enqueue budget); how many."""
        assert self.settings.redis_url is not None
        pool = arq_redis(self.settings.redis_url)
        try:
            async with self.ctx.session_factory() as session:
                due = await Inbox(session).due(utcnow() + timedelta(seconds=1))
            return await hand_off(ArqQueue(pool, timeout=5.0), self.ctx.session_factory, due)
        finally:
            await pool.aclose()

    def calls(self, endpoint: str) -> int:
        """How many times the simulator served this endpoint template."""
        return int(self.sim.sim.counters.by_endpoint.get(endpoint, 0))

    async def rows(self, data_type: DataType, whoop_user_id: int) -> list[dict[str, Any]]:
        """The cached records of a user."""
        async with self.ctx.session_factory() as session:
            return await RecordRepository(session, data_type).read(
                self.users[whoop_user_id], limit=1000
            )

    async def events(self) -> list[WebhookEvent]:
        """Every recorded webhook event, oldest first."""
        async with self.ctx.session_factory() as session:
            return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))

    async def event_count(self) -> int:
        """How many events the inbox holds."""
        async with self.ctx.session_factory() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)

    def record(self, whoop_user_id: int, kind: str, index: int = 0) -> dict[str, Any]:
        """A simulated record (newest first by insertion order reversed)."""
        recs = list(self.sim.sim.world.data(whoop_user_id).kinds[kind].values())
        body: dict[str, Any] = recs[-1 - index].body
        return body


async def run_burst_worker(settings: Settings, **overrides: Any) -> None:
    """Run an arq worker in this process until the queue is empty."""
    worker = create_worker(
        settings, burst=True, handle_signals=False, poll_delay=0.05, cron_jobs=[], **overrides
    )
    try:
        async with asyncio.timeout(90):
            await worker.async_run()
    finally:
        with warnings.catch_warnings():
            # arq 0.26 closes its pool with redis-py's deprecated close(); not ours to fix here.
            warnings.simplefilter("ignore", DeprecationWarning)
            await worker.close()


def embedded_app(settings: Settings, ctx: SyncContext, queue: InProcessQueue | None) -> FastAPI:
    """The webhook route mounted the way `serve` mounts it, over a shared context and queue."""
    assert settings.whoop_client_secret is not None
    app = FastAPI()
    app.include_router(webhook_router())
    app.state.webhook = WebhookState(
        secret=settings.whoop_client_secret.get_secret_value().encode(),
        tolerance_seconds=settings.webhook_tolerance_seconds,
        engine=ctx.engine,
        session_factory=ctx.session_factory,
        queue=queue,
    )
    return app


async def _clear(ctx: SyncContext) -> None:
    """Empty every table (tombstones too: the simulator's seeded ids come back in the next test)."""
    from tests.tables import empty_all

    async with ctx.session_factory() as session:
        await empty_all(session)
        await session.commit()


@contextlib.asynccontextmanager
async def pipeline(
    backend: str, database_url: str, redis_url: str, *, users: int = 3, days: int = 14, **extra: Any
) -> AsyncIterator[Pipeline]:
    """Start simulator and receiver; the database starts empty; everything stops afterwards."""
    redis = redis_url if backend == "postgresql" else None
    holder: dict[str, Any] = {}

    async with contextlib.AsyncExitStack() as stack:
        # The receiver first: the simulator needs its URL to deliver webhooks.
        base = await stack.enter_async_context(serve_app(_Forward(holder)))
        sim = await stack.enter_async_context(
            serve_in_background(sim_config(f"{base}/webhooks/whoop", users, days))
        )
        settings = make_settings(database_url, redis, sim.base_url, **extra)
        ctx = await build_context(settings)
        stack.push_async_callback(ctx.close)
        await _clear(ctx)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        inproc = None
        if backend == "postgresql":
            app: Any = create_app(settings)
            await stack.enter_async_context(_lifespan(app))
            if ctx.redis is not None:
                await ctx.redis.flushdb()
        else:
            inproc = InProcessQueue(JOBS, job_context(ctx), concurrency=8)
            inproc.start()
            stack.push_async_callback(inproc.close)
            app = embedded_app(settings, ctx, inproc)
        holder["app"] = app
        yield Pipeline(
            backend,
            settings,
            sim,
            ctx,
            f"{base}/webhooks/whoop",
            http,
            inproc=inproc,
            holder=holder,
        )


@contextlib.asynccontextmanager
async def connected(
    backend: str, database_url: str, redis_url: str, members: Iterable[int], **extra: Any
) -> AsyncIterator[Pipeline]:
    """A `pipeline` with these simulated members connected, the simulator's counters then reset
    (a test counts only its own calls)."""
    async with pipeline(backend, database_url, redis_url, **extra) as running:
        for whoop_user_id in members:
            await running.connect(whoop_user_id)
        running.sim.sim.reset_counters()
        yield running


class _Forward:
    """An ASGI app that forwards to whatever app the holder names (set once it exists)."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while True:
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
                message = await receive()
        await self.holder["app"](scope, receive, send)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


def arq_queue(redis_url: str) -> ArqQueue:
    """An arq queue on a Redis URL (a closed port for "Redis is down")."""
    return ArqQueue(arq_redis(redis_url, connect_timeout=0.5), timeout=1.0)
