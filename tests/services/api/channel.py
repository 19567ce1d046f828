"""The webhook channel as reads see it, for the tests of the read's economy and budget: apps on an
inbox of their own, a processed event that keeps the channel live, a user past the threshold."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import delete, update

from common.config import Settings
from common.db.models import ChannelState, WebhookEvent, WhoopConnection
from common.types import DataType
from tests.services.api.conftest import connect_user, mark_synced, objects, running, seed, state_of


async def clear_inbox(app: FastAPI) -> None:
    """No webhook event and no channel state: the channel is quiet until a test says otherwise."""
    async with state_of(app).session_factory() as session:
        await session.execute(delete(WebhookEvent))
        await session.execute(delete(ChannelState))
        await session.commit()


async def on_a_clear_inbox(settings: Settings, count: int = 1) -> AsyncIterator[list[FastAPI]]:
    """`count` api processes over one database and one Redis, the inbox cleared before and after."""
    started: list[FastAPI] = []
    runners = [running(settings) for _ in range(count)]
    try:
        for runner in runners:
            started.append(await runner.__anext__())
        await clear_inbox(started[0])
        yield started
    finally:
        if started:
            await clear_inbox(started[0])
        for runner in runners:
            await runner.aclose()


async def webhook_received(app: FastAPI, ago: timedelta = timedelta(minutes=2)) -> datetime:
    """A verified event of another member recorded and processed `ago` (any member's event keeps
    the channel live); when."""
    at = datetime.now(UTC) - ago
    async with state_of(app).session_factory() as session:
        session.add(
            WebhookEvent(
                trace_id=str(uuid.uuid4()),
                event_type="workout.updated",
                whoop_user_id=77,
                record_id=str(uuid.uuid4()),
                payload="{}",
                status="done",
                attempts=1,
                received_at=at,
            )
        )
        await session.commit()
    return at


async def stale_user(
    app: FastAPI, sleeps: int = 3, synced: Iterable[DataType] = (DataType.SLEEP,)
) -> tuple[uuid.UUID, int, list[dict[str, Any]]]:
    """A user whose backfill is done, with `sleeps` sleeps cached, and whose `synced` types were
    last synced 3 h ago (past the 2 h threshold)."""
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.SLEEP, whoop_user, sleeps)
    if stored:
        await seed(app, user, DataType.SLEEP, stored)
    for data_type in synced:
        await mark_synced(app, user, data_type, timedelta(hours=3))
    async with state_of(app).session_factory() as session:
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user)
            .values(backfill_pending_since=None)
        )
        await session.commit()
    return user, whoop_user, stored
