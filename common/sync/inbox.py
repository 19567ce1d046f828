"""The webhook inbox: events recorded before they are acknowledged, handed to the queue, closed.

An event is recorded once (unique `trace_id`), enqueued only when new, and stays `pending` until a job
closes it as done, ignored or failed. A job works on an event under a lease (`claimed_until`, extended
while it runs): no other job takes the event meanwhile, and a job that dies gives it back when the
lease ends. Whatever is still pending and unleased after INBOX_SWEEP_SECONDS (Redis was down, a job
was lost with its worker) is enqueued again by the sweeper; replay reopens closed ones. An event whose
tries ran out for a passing reason is parked until the reconciliation pass gives it back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from common.db.repositories import WebhookEventRepository
from common.db.repositories.base import Rider
from common.db.repositories.event_claim import ClaimedRow
from common.db.repositories.inbox_writer import InboxWriter
from common.db.repositories.webhook_events import finishing
from common.db.resilient import run_once_more
from common.db.types import utcnow
from common.queue import Queue, QueueUnavailable
from common.sync.events import EventOutcome, is_known
from common.types import EventStatus

__all__ = [
    "PROCESS_EVENT",
    "ClaimedEvent",
    "Inbox",
    "enqueue_recorded",
    "record_event",
    "retry_parked_events",
]

log = structlog.get_logger(__name__)

PROCESS_EVENT = "process_webhook_event"
# How long after its receipt an event failing for a passing reason is still retried (SPEC §4).
PARKED_RETRY_WINDOW = timedelta(days=1)


# A pending event leased to a job, with its connection as the claim read it.
ClaimedEvent = ClaimedRow


class Inbox:
    """Inbox operations over one session; the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.events = WebhookEventRepository(session)

    async def claim(self, event_id: int, holder: str, lease_seconds: float) -> ClaimedEvent | None:
        """Lease a pending event to `holder` and count an attempt, in one statement that also
        reads the event's connection; None when it is gone, closed, or leased to another job."""
        now = utcnow()
        return await self.events.claim(
            event_id, holder, now + timedelta(seconds=lease_seconds), now
        )

    async def extend_all(self, held: dict[int, str], lease_seconds: float) -> None:
        """Extend the leases of the jobs still working on events ({event id: holder})."""
        until = utcnow() + timedelta(seconds=lease_seconds)
        await self.events.extend_leases(held, until)

    async def release(self, event_id: int, holder: str) -> None:
        """Give an event back at once (its job was stopped); the next sweep or start takes it."""
        await self.events.release(event_id, holder)

    async def hold(
        self, event_id: int, holder: str, seconds: float, error: str, *, attempt: bool
    ) -> None:
        """Keep an event leased to `holder` for `seconds` (its next try); with `attempt=False`
        the try that found no budget is not counted."""
        until = utcnow() + timedelta(seconds=seconds)
        await self.events.hold(event_id, holder, until, error, attempt=attempt)

    async def park(self, event_id: int, error: str) -> None:
        """Leave an event whose tries ran out for a passing reason to the reconciliation pass."""
        await self.events.park(event_id, error)

    @staticmethod
    def closing(event_id: int, outcome: EventOutcome) -> Rider:
        """The close of an event with its outcome (done, ignored with why, failed with the
        error), as a write to go out with another statement of the same transaction (the
        event's last upsert, or its sync log)."""
        error = None if outcome.status is EventStatus.DONE else outcome.reason
        return finishing(event_id, outcome.status, error)

    async def fail(self, event_id: int, error: str) -> None:
        """Close an event as failed after its last try."""
        await self.events.finish(event_id, EventStatus.FAILED, error)

    async def due(
        self, received_before: datetime, limit: int = 500, unsent_before: datetime | None = None
    ) -> list[int]:
        """Pending events recorded (and last handed off) before a moment, or never handed off and
        recorded before `unsent_before`, not leased to a job nor parked: the sweeper's work."""
        events = await self.events.unprocessed(
            received_before, utcnow(), limit=limit, unsent_before=unsent_before
        )
        return [e.id for e in events]

    async def reopen(
        self,
        *,
        since: datetime | None,
        status: EventStatus | None,
        parked: bool = False,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[int]:
        """Put one page of recorded events (ids above `after_id`; `parked`: only parked ones)
        back to pending, with their tries reset, for a replay; their ids, in order (empty when
        none is left)."""
        ids = await self.events.for_replay(
            since=since, status=status, parked=parked, after_id=after_id, limit=limit
        )
        await self.events.reopen(ids)
        return ids


async def retry_parked_events(session: AsyncSession) -> int:
    """Give the events whose retries ran out for a passing reason (WHOOP 5xx, timeouts) back to
    the sweeper, and close as failed, with their last error, those received more than
    PARKED_RETRY_WINDOW ago (SPEC §4: retried for at most a day); how many went back. The
    reconciliation pass calls it and commits."""
    events = WebhookEventRepository(session)
    given_up = await events.give_up_parked(utcnow() - PARKED_RETRY_WINDOW)
    count = await events.unpark()
    if given_up:
        log.warning("inbox.parked_given_up", count=given_up)
    if count:
        log.info("inbox.unparked", count=count)
    return count


async def record_event(
    engine: AsyncEngine,
    *,
    trace_id: str,
    event_type: str,
    whoop_user_id: int,
    record_id: str,
    payload: str,
    will_enqueue: bool,
) -> tuple[int | None, EventStatus]:
    """The webhook's record, committed in one statement: (id, status), id None for a duplicate.

    With `will_enqueue`, a new pending event is noted as handed off in the same statement; the
    caller then calls `enqueue_recorded`, which takes the note back if the queue refuses.
    """
    status = EventStatus.PENDING if is_known(event_type) else EventStatus.IGNORED

    async def insert(connection: AsyncConnection) -> int | None:
        """The record is its own unit of work by design: WHOOP is answered 2xx only once it is
        committed, and no request or job around it has a transaction to join."""
        async with connection.begin():
            return await InboxWriter(connection).record(
                trace_id=trace_id,
                event_type=event_type,
                whoop_user_id=whoop_user_id,
                record_id=record_id,
                payload=payload,
                status=status,
                enqueued=will_enqueue and status is EventStatus.PENDING,
            )

    # A pooled connection lost to a database restart is replaced and the insert sent once more
    # (ON CONFLICT makes a repeat harmless).
    return await run_once_more(engine, insert), status


async def enqueue_recorded(queue: Queue, engine: AsyncEngine, event_id: int) -> bool:
    """Enqueue an event `record_event` noted as handed off; on failure clear the note (sweeper).

    Clearing the note is its own unit of work by design: it follows the queue's refusal, after
    the record committed, and nothing else is written with it."""
    try:
        await queue.enqueue(PROCESS_EVENT, event_id)
    except QueueUnavailable as exc:
        log.warning("inbox.enqueue_failed", event_id=event_id, error=str(exc))
    else:
        return True
    try:
        async with engine.begin() as connection:
            await InboxWriter(connection).clear_enqueued(event_id)
    except Exception:  # the sweeper still finds it once the note is older than its cut-off
        log.warning("inbox.clear_enqueued_failed", event_id=event_id)
    return False
