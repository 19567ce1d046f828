"""All SQL of the webhook inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import WebhookEvent
from common.db.repositories.base import dialect_insert
from common.db.types import utcnow
from common.types import EventStatus


class WebhookEventRepository:
    """Record, claim and finish webhook events; dedup lives here, on `trace_id`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        *,
        trace_id: str,
        event_type: str,
        whoop_user_id: int,
        record_id: str,
        payload: str,
        status: EventStatus = EventStatus.PENDING,
    ) -> int | None:
        """Insert the event; its id when new, None when this `trace_id` was seen before."""
        stmt = (
            dialect_insert(self.session, WebhookEvent.__table__)
            .values(
                trace_id=trace_id,
                event_type=event_type,
                whoop_user_id=whoop_user_id,
                record_id=record_id,
                payload=payload,
                status=status.value,
                attempts=0,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["trace_id"])
            .returning(WebhookEvent.__table__.c.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, event_id: int) -> WebhookEvent | None:
        """One event by id."""
        return await self.session.get(WebhookEvent, event_id, populate_existing=True)

    async def mark_enqueued(self, event_ids: Sequence[int]) -> None:
        """Note when events were handed to the queue (the sweeper looks at this)."""
        if event_ids:
            await self.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(event_ids))
                .values(enqueued_at=utcnow())
            )

    async def start_attempt(self, event_id: int) -> None:
        """Count one more processing attempt."""
        await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(attempts=WebhookEvent.attempts + 1)
        )

    async def finish(self, event_id: int, status: EventStatus, error: str | None = None) -> None:
        """Close an event as done, ignored or failed."""
        await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(status=status.value, last_error=error, processed_at=utcnow())
        )

    async def note_error(self, event_id: int, error: str) -> None:
        """Keep the latest error of an event that will be retried."""
        await self.session.execute(
            update(WebhookEvent).where(WebhookEvent.id == event_id).values(last_error=error)
        )

    async def unprocessed(
        self, received_before: datetime, limit: int = 500
    ) -> Sequence[WebhookEvent]:
        """Pending events recorded before a moment whose last hand-off is also older (the sweep)."""
        stmt = (
            select(WebhookEvent)
            .where(
                WebhookEvent.status == EventStatus.PENDING.value,
                WebhookEvent.received_at < received_before,
                (WebhookEvent.enqueued_at.is_(None)) | (WebhookEvent.enqueued_at < received_before),
            )
            .order_by(WebhookEvent.received_at)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def for_replay(
        self, *, since: datetime | None, status: EventStatus | None, limit: int = 10_000
    ) -> Sequence[WebhookEvent]:
        """Events to enqueue again, oldest first."""
        stmt = select(WebhookEvent)
        if since is not None:
            stmt = stmt.where(WebhookEvent.received_at >= since)
        if status is not None:
            stmt = stmt.where(WebhookEvent.status == status.value)
        return (
            await self.session.scalars(stmt.order_by(WebhookEvent.received_at).limit(limit))
        ).all()

    async def reopen(self, event_ids: Sequence[int]) -> None:
        """Put events back to pending so that they are processed again (replay)."""
        if event_ids:
            await self.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(event_ids))
                .values(status=EventStatus.PENDING.value, processed_at=None)
            )
