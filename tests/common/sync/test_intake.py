"""The webhook's batched intake, on both backends: a storm of concurrent deliveries is recorded
once each (duplicates inside a batch and across batches alike), new events are handed to arq in
one round trip, and a hand-off the queue refuses is taken back for the sweeper."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import redis.asyncio as aioredis
from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db.models import WebhookEvent
from common.queue import ArqQueue, arq_redis
from common.sync.intake import Intake
from common.types import EventStatus


@dataclass(frozen=True)
class Inbox:
    """A backend's engine and this test's own trace ids (deleted afterwards)."""

    engine: AsyncEngine
    prefix: str


@pytest.fixture
async def inbox(
    backend: str, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> AsyncIterator[Inbox]:
    chosen = Inbox(
        pg_engine if backend == "postgresql" else sqlite_engine,
        f"intake-{uuid.uuid4().hex[:8]}-",
    )
    yield chosen
    async with chosen.engine.begin() as connection:
        await connection.execute(
            delete(WebhookEvent).where(WebhookEvent.trace_id.like(f"{chosen.prefix}%"))
        )


async def _stored(inbox: Inbox) -> list[Row[int, str, datetime | None]]:
    async with inbox.engine.connect() as connection:
        rows = await connection.execute(
            select(WebhookEvent.id, WebhookEvent.trace_id, WebhookEvent.enqueued_at).where(
                WebhookEvent.trace_id.like(f"{inbox.prefix}%")
            )
        )
        return list(rows.all())


async def _deliver(intake: Intake, trace_id: str, event_type: str) -> tuple[int | None, str]:
    event_id, _ = await intake.record(
        trace_id=trace_id,
        event_type=event_type,
        whoop_user_id=7,
        record_id=str(uuid.uuid4()),
        payload="{}",
    )
    return event_id, trace_id


async def test_a_storm_is_recorded_once_per_trace_id(inbox: Inbox) -> None:
    intake = Intake(inbox.engine, queue=None)
    prefix = inbox.prefix
    traces = [f"{prefix}{n}" for n in range(300)]
    earlier = await _deliver(intake, traces[0], "sleep.updated")
    # Every trace once, and every tenth a second time in the same storm.
    storm = traces + traces[::10]
    answers = await asyncio.gather(*(_deliver(intake, t, "sleep.updated") for t in storm))
    new = [(event_id, trace) for event_id, trace in answers if event_id is not None]
    assert sorted(trace for _, trace in new) == sorted(traces[1:])
    assert len({event_id for event_id, _ in new}) == len(new)
    stored = await _stored(inbox)
    assert len(stored) == 300
    assert earlier[0] in {row.id for row in stored}
    assert all(row.enqueued_at is None for row in stored)  # no queue: nothing noted as handed off


async def test_new_events_are_handed_to_arq_together(
    inbox: Inbox, redis_url: str, redis: aioredis.Redis
) -> None:
    pool = arq_redis(redis_url)
    try:
        queue = ArqQueue(pool)
        intake = Intake(inbox.engine, queue)
        prefix = inbox.prefix
        recorded = await asyncio.gather(
            *(_deliver(intake, f"{prefix}{n}", "sleep.updated") for n in range(50))
        )
        ids = [event_id for event_id, _ in recorded if event_id is not None]
        assert len(ids) == 50
        assert await asyncio.gather(*(intake.hand_off(i) for i in ids)) == [True] * 50
        assert await redis.zcard(pool.default_queue_name) == 50
        assert all(row.enqueued_at is not None for row in await _stored(inbox))
    finally:
        await pool.aclose()


async def test_a_refused_hand_off_is_taken_back_for_the_sweeper(inbox: Inbox) -> None:
    pool = arq_redis("redis://127.0.0.1:1/0", connect_timeout=0.2)
    try:
        intake = Intake(inbox.engine, ArqQueue(pool))
        prefix = inbox.prefix
        recorded = await asyncio.gather(
            *(_deliver(intake, f"{prefix}{n}", "sleep.updated") for n in range(20))
        )
        ids = [event_id for event_id, _ in recorded if event_id is not None]
        assert all(row.enqueued_at is not None for row in await _stored(inbox))
        assert await asyncio.gather(*(intake.hand_off(i) for i in ids)) == [False] * 20
        assert all(row.enqueued_at is None for row in await _stored(inbox))
    finally:
        await pool.aclose()


async def test_an_unknown_type_is_recorded_ignored_and_never_handed_off(
    inbox: Inbox,
) -> None:
    intake = Intake(inbox.engine, queue=None)
    event_id, status = await intake.record(
        trace_id=f"{inbox.prefix}unknown",
        event_type="body.updated",
        whoop_user_id=7,
        record_id="x",
        payload="{}",
    )
    assert event_id is not None
    assert status is EventStatus.IGNORED
