"""The backlog an operator watches: the inbox's events and the app pushes still waiting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, WebhookEvent
from common.types import EventStatus


@dataclass(frozen=True)
class Backlog:
    """Counts by state and the oldest waiting item of the inbox and of the push queue."""

    events_pending: int
    events_parked: int
    events_failed: int
    oldest_pending_at: datetime | None
    pushes_pending: int
    pushes_failed: int
    oldest_push_at: datetime | None


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class BacklogRepository:
    """Two aggregate statements, one over each queue."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def snapshot(self) -> Backlog:
        """The backlog now (failed items are those kept by retention)."""
        pending = WebhookEvent.status == EventStatus.PENDING.value
        waiting = and_(pending, WebhookEvent.parked_at.is_(None))
        events = (
            await self.session.execute(
                select(
                    _count(waiting),
                    _count(and_(pending, WebhookEvent.parked_at.is_not(None))),
                    _count(WebhookEvent.status == EventStatus.FAILED.value),
                    func.min(case((waiting, WebhookEvent.received_at))),
                ).where(
                    WebhookEvent.status.in_((EventStatus.PENDING.value, EventStatus.FAILED.value))
                )
            )
        ).one()
        open_push = AppDelivery.status == "pending"
        pushes = (
            await self.session.execute(
                select(
                    _count(open_push),
                    _count(AppDelivery.status == "failed"),
                    func.min(case((open_push, AppDelivery.created_at))),
                ).where(AppDelivery.status.in_(("pending", "failed")))
            )
        ).one()
        return Backlog(
            int(events[0]),
            int(events[1]),
            int(events[2]),
            events[3],
            int(pushes[0]),
            int(pushes[1]),
            pushes[2],
        )
