"""Retention: closed events, attempts, OAuth states, tombstones and the change feed older than
RETENTION_DAYS go, in batches; what is pending, recent, or the latest sync state stays. On both
backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.config import Settings
from common.db.models import (
    Change,
    OAuthState,
    SleepTombstone,
    SyncAttempt,
    SyncLog,
    WebhookEvent,
)
from common.db.repositories.changes import ChangeRepository
from common.db.repositories.retention import CHANGES, delete_batch
from common.db.types import utcnow
from common.retention import prune
from common.types import EventStatus
from tests.tables import empty_all

USER = uuid.UUID("9d2f1c1e-3f53-4a3e-9a5e-3a1f6f0e2b11")


@pytest.fixture
async def factory(
    backend: str, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Committed sessions on the backend's test database, emptied before and after (retention
    deletes across the tables, so rows another test committed would change its counts)."""
    engine = pg_engine if backend == "postgresql" else sqlite_engine
    await _empty(engine)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await _empty(engine)


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await empty_all(conn)


def _event(n: int, status: EventStatus, received_at: datetime) -> dict[str, object]:
    return {
        "trace_id": f"retention-{n}",
        "event_type": "sleep.updated",
        "whoop_user_id": 1,
        "record_id": str(uuid.UUID(int=n)),
        "payload": '{"user_id": 1}',
        "status": status.value,
        "attempts": 1,
        "received_at": received_at,
    }


def _attempt(started_at: datetime) -> dict[str, object]:
    return {
        "user_id": USER,
        "data_type": "sleep",
        "trigger": "webhook",
        "outcome": "success",
        "records": 1,
        "duration_ms": 5,
        "started_at": started_at,
    }


async def _seed(factory: async_sessionmaker[AsyncSession], now: datetime) -> None:
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    async with factory() as session:
        await session.execute(
            insert(WebhookEvent),
            [_event(n, EventStatus.DONE, old) for n in range(5)]
            + [
                _event(10, EventStatus.FAILED, old),
                _event(11, EventStatus.IGNORED, old),
                _event(12, EventStatus.PENDING, old),
                _event(13, EventStatus.DONE, recent),
            ],
        )
        await session.execute(insert(SyncAttempt), [_attempt(old)] * 3 + [_attempt(recent)])
        await session.execute(
            insert(SyncLog),
            [
                {
                    "user_id": USER,
                    "data_type": "sleep",
                    "last_sync_at": old,
                    "last_attempt_at": old,
                    "sync_status": "success",
                    "updated_at": old,
                    "created_at": old,
                }
            ],
        )
        await session.execute(
            insert(OAuthState),
            [
                {"state": "olduse01", "user_id": USER, "expires_at": old, "used_at": old},
                {"state": "oldopen1", "user_id": USER, "expires_at": old},
                {"state": "fresh001", "user_id": USER, "expires_at": now + timedelta(minutes=9)},
            ],
        )
        await session.execute(
            insert(SleepTombstone),
            [
                {"id": uuid.UUID(int=1), "user_id": USER, "deleted_at": old},
                {"id": uuid.UUID(int=2), "user_id": USER, "deleted_at": recent},
            ],
        )
        await session.commit()


async def test_prune_deletes_what_is_older_than_the_retention_in_batches(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(factory, utcnow())
    deleted = await prune(factory, 30, batch=2)
    assert deleted["webhook_events"] == 7
    assert deleted["sync_attempts"] == 3
    assert deleted["oauth_states"] == 2
    assert deleted["sleep_tombstones"] == 1
    async with factory() as session:
        events = await session.execute(select(WebhookEvent.trace_id).order_by(WebhookEvent.id))
        assert events.scalars().all() == ["retention-12", "retention-13"]  # pending, recent
        assert await session.scalar(select(func.count()).select_from(SyncAttempt)) == 1
        assert await session.scalar(select(func.count()).select_from(SyncLog)) == 1
        states = await session.scalars(select(OAuthState.state))
        assert list(states) == ["fresh001"]
        tombstones = await session.scalars(select(SleepTombstone.id))
        assert list(tombstones) == [uuid.UUID(int=2)]


def test_retention_defaults_to_thirty_days() -> None:
    assert Settings().retention_days == 30


def _change(n: int, changed_at: datetime) -> dict[str, object]:
    return {
        "user_id": USER,
        "whoop_user_id": 1,
        "data_type": "workout",
        "action": "deleted",
        "record_id": str(uuid.UUID(int=n)),
        "updated_at": changed_at,
        "changed_at": changed_at,
    }


async def test_the_retention_pass_prunes_the_change_feed_a_committed_batch_at_a_time(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    async with factory() as session:
        for n in range(5):  # numbered one by one, oldest first
            await session.execute(insert(Change).values(_change(n, old if n < 3 else recent)))
        await session.commit()
        seqs = list(await session.scalars(select(Change.seq).order_by(Change.seq)))
    cutoff = now - timedelta(days=30)
    async with factory() as session:
        assert await delete_batch(session, CHANGES, cutoff, 2) == 2
        await session.commit()
    async with factory() as session:
        # One batch is its own transaction: its changes are gone and the horizon covers them.
        assert await ChangeRepository(session).horizon() == seqs[1]
        assert list(await session.scalars(select(Change.seq).order_by(Change.seq))) == seqs[2:]
    deleted = await prune(factory, 30, batch=2)  # every rule, the feed's among them
    assert deleted["changes"] == 1
    async with factory() as session:
        assert await ChangeRepository(session).horizon() == seqs[2]
        assert list(await session.scalars(select(Change.seq).order_by(Change.seq))) == seqs[3:]
