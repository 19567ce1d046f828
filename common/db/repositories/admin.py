"""The operators' reads (SPEC §3.6): inbox and push counts, failures to replay, webhook -> row lag
samples, and one user's recent events. Read-only; every figure comes from durable rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, Change, WebhookEvent, WhoopConnection
from common.types import EventStatus

PENDING, FAILED = EventStatus.PENDING.value, EventStatus.FAILED.value


@dataclass(frozen=True)
class InboxCounts:
    """Events waiting, parked (retries ran out for a passing reason) and failed."""

    pending: int
    parked: int
    failed: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class PushCounts:
    """Pushes to the app's backend still to go out, and those given up on."""

    pending: int
    failed: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class FailedPush:
    """A push given up on, with the change it carried."""

    change_seq: int
    user_id: uuid.UUID
    kind: str
    attempts: int
    last_error: str | None
    changed_at: datetime


class AdminRepository:
    """All SQL of the operators' pages (read-only)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def inbox_counts(self) -> InboxCounts:
        """Pending (not parked), parked and failed events, and the oldest pending receipt."""
        parked = WebhookEvent.parked_at.is_not(None)
        stmt = select(
            func.count().filter(WebhookEvent.status == PENDING, ~parked),
            func.count().filter(WebhookEvent.status == PENDING, parked),
            func.count().filter(WebhookEvent.status == FAILED),
            func.min(WebhookEvent.received_at).filter(WebhookEvent.status == PENDING, ~parked),
        ).where(WebhookEvent.status.in_((PENDING, FAILED)))
        row = (await self.session.execute(stmt)).one()
        return InboxCounts(int(row[0]), int(row[1]), int(row[2]), row[3])

    async def push_counts(self) -> PushCounts:
        """Pending and failed pushes, and when the oldest pending one was created."""
        stmt = select(
            func.count().filter(AppDelivery.status == "pending"),
            func.count().filter(AppDelivery.status == "failed"),
            func.min(AppDelivery.created_at).filter(AppDelivery.status == "pending"),
        ).where(AppDelivery.status.in_(("pending", "failed")))
        row = (await self.session.execute(stmt)).one()
        return PushCounts(int(row[0]), int(row[1]), row[2])

    async def lag_samples(self, since: datetime) -> list[tuple[datetime, datetime]]:
        """(received_at, processed_at) of the events processed (done) received since a moment."""
        stmt = select(WebhookEvent.received_at, WebhookEvent.processed_at).where(
            WebhookEvent.status == EventStatus.DONE.value,
            WebhookEvent.received_at >= since,
            WebhookEvent.processed_at.is_not(None),
        )
        rows = (await self.session.execute(stmt)).all()
        return [(r, p) for r, p in rows if p is not None]

    async def failed_events(self, limit: int = 50) -> Sequence[WebhookEvent]:
        """Failed and parked events, newest first."""
        stmt = (
            select(WebhookEvent)
            .where(
                or_(
                    WebhookEvent.status == FAILED,
                    (WebhookEvent.status == PENDING) & WebhookEvent.parked_at.is_not(None),
                )
            )
            .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def failed_pushes(self, limit: int = 50) -> list[FailedPush]:
        """Pushes given up on, newest change first."""
        stmt = (
            select(
                AppDelivery.change_seq,
                AppDelivery.user_id,
                Change.data_type,
                Change.action,
                AppDelivery.attempts,
                AppDelivery.last_error,
                Change.changed_at,
            )
            .join(Change, Change.seq == AppDelivery.change_seq)
            .where(AppDelivery.status == "failed")
            .order_by(AppDelivery.change_seq.desc())
            .limit(limit)
        )
        return [
            FailedPush(seq, user, f"{data_type}.{action}", attempts, error, at)
            for seq, user, data_type, action, attempts, error, at in (
                await self.session.execute(stmt)
            ).all()
        ]

    async def user_of_whoop(self, whoop_user_id: int) -> uuid.UUID | None:
        """The app user holding a WHOOP account."""
        stmt = select(WhoopConnection.user_id).where(WhoopConnection.whoop_user_id == whoop_user_id)
        user_id: uuid.UUID | None = await self.session.scalar(stmt)
        return user_id

    async def user_events(self, whoop_user_id: int, limit: int = 50) -> Sequence[WebhookEvent]:
        """A WHOOP user's webhook events, newest first."""
        stmt = (
            select(WebhookEvent)
            .where(WebhookEvent.whoop_user_id == whoop_user_id)
            .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()
