"""The engines' settings: what an acknowledged SQLite write survives, and which broken
PostgreSQL connections leave the pool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db.engine import create_engine
from common.db.models import WebhookEvent
from common.db.repositories.inbox_writer import InboxWriter
from common.db.resilient import is_outage
from common.types import EventStatus

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def test_sqlite_inbox_write_is_durable_before_it_returns(sqlite_engine: AsyncEngine) -> None:
    """The connection the webhook records an event on syncs every commit (not NORMAL)."""
    async with sqlite_engine.connect() as connection:
        event_id = await InboxWriter(connection).record(
            trace_id="durable-1",
            event_type="sleep.updated",
            whoop_user_id=1,
            record_id="00000000-0000-0000-0000-000000000001",
            payload="{}",
            status=EventStatus.PENDING,
            enqueued=False,
        )
        mode = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar()
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
        await connection.execute(delete(WebhookEvent).where(WebhookEvent.id == event_id))
        await connection.commit()
    assert event_id is not None
    assert (mode, journal) == (FULL, "wal")


async def test_a_connection_left_mid_operation_leaves_the_pool(pg_url: str) -> None:
    """asyncpg's "another operation is in progress" (a statement cut off mid-protocol, as a
    server shutdown leaves one) invalidates the connection, so the next checkout gets a good one
    instead of the same broken connection for the pool's lifetime."""
    engine = create_engine(pg_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            busy = asyncio.ensure_future(driver.fetchval("SELECT pg_sleep(0.5)"))
            await asyncio.sleep(0.05)  # the driver is now mid-operation
            with pytest.raises(DBAPIError) as caught:
                await connection.exec_driver_sql("SELECT 1")
            await asyncio.gather(busy, return_exceptions=True)
        assert caught.value.connection_invalidated
        assert is_outage(caught.value)
        async with engine.connect() as connection:
            fresh = await connection.get_raw_connection()
            assert fresh.driver_connection is not driver
            assert (await connection.exec_driver_sql("SELECT 1")).scalar() == 1
    finally:
        await engine.dispose()
