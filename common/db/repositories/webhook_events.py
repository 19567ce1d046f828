"""The webhook inbox's SQL (the claim's is `event_claim`'s)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import WebhookEvent
from common.db.repositories.base import Rider
from common.db.repositories.event_claim import ClaimedRow, claim_event
from common.db.types import utcnow
from common.types import EventStatus

_EVENTS: Any = WebhookEvent.__table__
_FINISH = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        status=bindparam("status"),
        last_error=bindparam("error"),
        processed_at=bindparam("at"),
        claimed_until=None,
    )
)


def finishing(event_id: int, status: EventStatus, error: str | None = None) -> Rider:
    """The close of an event as a rider: it goes out with another statement of the write."""
    params = {"event_id": event_id, "status": status.value, "error": error, "at": utcnow()}
    return Rider("closed_event", _FINISH, params)


class WebhookEventRepository:
    """Record, claim and finish webhook events; dedup lives here, on `trace_id`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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

    async def claim(
        self, event_id: int, holder: str, until: datetime, now: datetime
    ) -> ClaimedRow | None:
        """Take the lease of a pending event for `holder` (`event_claim.claim_event`)."""
        return await claim_event(self.session, event_id, holder, until, now)

    async def extend_leases(self, held: dict[int, str], until: datetime) -> None:
        """Push the leases of running jobs further ({event id: holder}), only where still held."""
        if held:
            await self.session.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id.in_(list(held)),
                    WebhookEvent.claimed_by.in_(list(held.values())),
                )
                .values(claimed_until=until)
            )

    async def release(self, event_id: int, holder: str) -> None:
        """End `holder`'s lease now, the try its claim counted taken back (its job was stopped
        before it finished: no fault of the event's)."""
        await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id, WebhookEvent.claimed_by == holder)
            .values(claimed_until=None, enqueued_at=None, attempts=WebhookEvent.attempts - 1)
        )

    async def hold(
        self, event_id: int, holder: str, until: datetime, error: str, *, attempt: bool
    ) -> None:
        """Keep an event leased to `holder` until a later try; `attempt=False` takes back the
        attempt its claim counted (waiting for the budget is not a try)."""
        attempts = WebhookEvent.attempts if attempt else WebhookEvent.attempts - 1
        await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(
                claimed_by=holder,
                claimed_until=until,
                attempts=attempts,
                last_error=error,
                enqueued_at=utcnow(),
            )
        )

    async def park(self, event_id: int, error: str) -> None:
        """Leave a pending event to the reconciliation pass (its tries ran out for a passing reason)."""
        await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(
                parked_at=utcnow(),
                claimed_by=None,
                claimed_until=None,
                attempts=0,
                last_error=error,
            )
        )

    async def give_up_parked(self, received_before: datetime) -> int:
        """Close as failed, with their last error, the parked events received before a moment
        (retried long enough); how many."""
        result = await self.session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.status == EventStatus.PENDING.value,
                WebhookEvent.parked_at.is_not(None),
                WebhookEvent.received_at < received_before,
            )
            .values(status=EventStatus.FAILED.value, processed_at=utcnow(), parked_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def unpark(self) -> int:
        """Make every parked event due for the sweeper again; how many."""
        result = await self.session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.status == EventStatus.PENDING.value,
                WebhookEvent.parked_at.is_not(None),
            )
            .values(parked_at=None, enqueued_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def finish(self, event_id: int, status: EventStatus, error: str | None = None) -> None:
        """Close an event as done, ignored or failed."""
        await finishing(event_id, status, error).run(self.session)

    async def note_error(self, event_id: int, error: str) -> None:
        """Keep the latest error of an event that will be retried."""
        await self.session.execute(
            update(WebhookEvent).where(WebhookEvent.id == event_id).values(last_error=error)
        )

    async def unprocessed(
        self,
        received_before: datetime,
        now: datetime,
        limit: int = 500,
        unsent_before: datetime | None = None,
    ) -> Sequence[WebhookEvent]:
        """Pending events neither leased to a job nor parked (the sweep): those handed off before
        `received_before` (recorded before it too), those never handed off (a failed enqueue
        took its note back) recorded before `unsent_before` (default: the same moment), and
        those whose job's lease ran out without a hand-off since (the job died with its worker)."""
        unsent_before = received_before if unsent_before is None else unsent_before
        # A lease that ran out with its event still pending and not handed on since: its job
        # died (a killed worker) and no queued job will come for it.
        orphaned = WebhookEvent.claimed_until.is_not(None) & (
            WebhookEvent.enqueued_at.is_(None)
            | (WebhookEvent.enqueued_at < WebhookEvent.claimed_until)
        )
        stmt = (
            select(WebhookEvent)
            .where(
                WebhookEvent.status == EventStatus.PENDING.value,
                (WebhookEvent.enqueued_at.is_(None) & (WebhookEvent.received_at < unsent_before))
                | (
                    (WebhookEvent.enqueued_at < received_before)
                    & (WebhookEvent.received_at < received_before)
                )
                | orphaned,
                (WebhookEvent.claimed_until.is_(None)) | (WebhookEvent.claimed_until <= now),
                WebhookEvent.parked_at.is_(None),
            )
            .order_by(WebhookEvent.received_at)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def for_replay(
        self,
        *,
        since: datetime | None,
        status: EventStatus | None,
        parked: bool = False,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[int]:
        """Ids of events to enqueue again (`parked`: pending ones whose retries ran out), one
        page in id order after `after_id`."""
        stmt = select(WebhookEvent.id).where(WebhookEvent.id > after_id)
        if parked:
            stmt = stmt.where(
                WebhookEvent.status == EventStatus.PENDING.value,
                WebhookEvent.parked_at.is_not(None),
            )
        if since is not None:
            stmt = stmt.where(WebhookEvent.received_at >= since)
        if status is not None:
            stmt = stmt.where(WebhookEvent.status == status.value)
        return list((await self.session.scalars(stmt.order_by(WebhookEvent.id).limit(limit))).all())

    async def reopen(self, event_ids: Sequence[int]) -> None:
        """Put events back to pending with their tries reset, so that each gets a full set of
        tries again (replay); the sweeper finds them without waiting for an older hand-off."""
        if event_ids:
            await self.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(event_ids))
                .values(
                    status=EventStatus.PENDING.value,
                    processed_at=None,
                    attempts=0,
                    enqueued_at=None,
                    claimed_until=None,
                    parked_at=None,
                )
            )
