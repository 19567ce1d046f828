"""A refused event (503) tells every process that the webhook channel may have lost one: on both
backends the refusal is written to the channel state with the next event recorded, and the channel
then confirms nothing for an hour."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from common.config import Settings
from common.db.engine import create_engine, create_session_factory
from common.db.models import ChannelState
from common.db.repositories import ChannelRepository
from common.db.repositories.ops import WEBHOOK_REFUSAL, OpsRepository
from common.db.types import utcnow
from common.queue import InProcessQueue
from common.sync.context import build_context
from common.sync.freshness import channel_view
from common.sync.jobs import JOBS, job_context, sweep_inbox
from common.sync.refusals import REFUSED_KEY
from services.webhook.app import webhook_router
from services.webhook.deps import Refusals, WebhookState
from tests.common.sync.harness import CLIENT_SECRET, make_settings, signed

DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:9/none"


def _state(engine: AsyncEngine, refusals: Refusals) -> WebhookState:
    return WebhookState(
        secret=CLIENT_SECRET.encode(),
        tolerance_seconds=300,
        engine=engine,
        session_factory=create_session_factory(engine),
        queue=None,
        refusals=refusals,
    )


async def _post(app: FastAPI) -> httpx.Response:
    body = {"user_id": 10001, "id": str(uuid.uuid4()), "type": "sleep.updated"}
    raw, headers = signed(body | {"trace_id": str(uuid.uuid4())})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hook.test") as http:
        return await http.post("/webhooks/whoop", content=raw, headers=headers)


async def test_a_refusal_is_written_with_the_next_event_and_quiets_the_channel(
    backend: str, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> None:
    engine = pg_engine if backend == "postgresql" else sqlite_engine
    async with create_session_factory(engine)() as session:
        await session.execute(delete(ChannelState))
        await session.commit()
    dead = create_engine(DEAD_DATABASE, connect_args={"timeout": 2})
    refusals = Refusals()
    app = FastAPI()
    app.include_router(webhook_router())
    before = utcnow()
    try:
        app.state.webhook = _state(dead, refusals)
        refused = await _post(app)
    finally:
        await dead.dispose()
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "unavailable"
    assert refusals.unwritten is not None
    app.state.webhook = _state(engine, refusals)  # the database is back
    accepted = await _post(app)
    assert accepted.status_code == 204
    assert refusals.unwritten is None
    async with create_session_factory(engine)() as session:
        row = await ChannelRepository(session).read()
    assert row.last_refused_at is not None
    assert before <= row.last_refused_at <= utcnow()
    settings = Settings(freshness="webhooks")
    assert row.last_event_at is not None  # the second event was recorded, and yet:
    assert channel_view(settings, row, utcnow()).live is False
    assert channel_view(settings, row, utcnow() + timedelta(minutes=61)).live is False  # quiet
    later = row.last_event_at + timedelta(minutes=61)
    assert (
        channel_view(
            settings.model_copy(update={"webhook_liveness_seconds": 7200}), row, later
        ).live
        is True
    )


async def test_a_refusal_outlives_the_receiver_that_answered_it(
    pg_url: str, pg_engine: AsyncEngine, redis_url: str, redis: Redis
) -> None:
    """The receiver refuses while PostgreSQL is away and is restarted before it comes back (its
    memory lost): the note it left in Redis reaches the channel state with the worker's sweep."""
    async with create_session_factory(pg_engine)() as session:
        await session.execute(delete(ChannelState))
        await session.commit()
    dead = create_engine(DEAD_DATABASE, connect_args={"timeout": 2})
    app = FastAPI()
    app.include_router(webhook_router())
    before = utcnow()
    try:
        app.state.webhook = _state(dead, Refusals(redis=redis))
        assert (await _post(app)).status_code == 503
    finally:
        await dead.dispose()
    del app  # the receiver is gone, and what it kept in memory with it

    ctx = await build_context(make_settings(pg_url, redis_url, "http://127.0.0.1:9"))
    queue = InProcessQueue(JOBS, job_context(ctx), concurrency=1)
    try:
        await sweep_inbox(job_context(ctx, queue))
    finally:
        await ctx.close()

    async with create_session_factory(pg_engine)() as session:
        row = await ChannelRepository(session).read()
        refusals_counted = await OpsRepository(session).count_since(WEBHOOK_REFUSAL, before)
    assert row.last_refused_at is not None
    assert before <= row.last_refused_at <= utcnow()
    assert refusals_counted == 1
    assert await redis.get(REFUSED_KEY) is None  # written once, then forgotten
