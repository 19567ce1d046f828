"""Rows the operators' tests need: webhook events in a given state, a failed push."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.models import AppDelivery, Change, WebhookEvent

ADMIN = "operators-test-token-0123456789"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def add_event(
    factory: async_sessionmaker[AsyncSession],
    whoop_user_id: int,
    *,
    status: str = "failed",
    parked: bool = False,
    record_id: str | None = None,
    event_type: str = "sleep.updated",
    error: str | None = "RuntimeError: boom",
    received_ago: timedelta = timedelta(minutes=5),
) -> int:
    """A recorded webhook event in the given state; its id."""
    now = datetime.now(UTC)
    event = WebhookEvent(
        trace_id=uuid.uuid4().hex,
        event_type=event_type,
        whoop_user_id=whoop_user_id,
        record_id=record_id or str(uuid.uuid4()),
        payload="{}",
        status=status,
        attempts=8 if status == "failed" or parked else 0,
        last_error=error,
        received_at=now - received_ago,
        processed_at=now if status == "failed" else None,
        parked_at=now if parked else None,
    )
    async with factory() as session:
        session.add(event)
        await session.commit()
        return event.id


async def add_failed_push(
    factory: async_sessionmaker[AsyncSession], user_id: uuid.UUID, whoop_user_id: int
) -> int:
    """A change whose push was given up on; its number."""
    now = datetime.now(UTC)
    async with factory() as session:
        change = Change(
            user_id=user_id,
            whoop_user_id=whoop_user_id,
            data_type="sleep",
            action="upserted",
            record_id=str(uuid.uuid4()),
            updated_at=now,
            data="{}",
            changed_at=now,
        )
        session.add(change)
        await session.flush()
        session.add(
            AppDelivery(
                change_seq=change.seq,
                user_id=user_id,
                status="failed",
                attempts=12,
                last_error="HTTP 500",
            )
        )
        await session.commit()
        return change.seq
