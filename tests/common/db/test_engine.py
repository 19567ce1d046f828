"""The embedded database's settings: what an acknowledged write survives."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db.models import WebhookEvent
from common.db.repositories.webhook_events import InboxWriter
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
