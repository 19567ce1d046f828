"""Replay: recorded webhook events and pushes to the app's backend sent again.

One implementation for `whoop-sync replay` / `replay-app` and the operators' replay (SPEC §3.6),
run like a job: it owns its units of work (a page of events committed before it is handed to
the queue; the pushes reopened before their jobs start).
Jobs are idempotent, so replaying what was already processed only costs WHOOP calls, and a
receiver sees a replayed push under the `webhook-id` it had.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories.deliveries import DeliveryRepository
from common.feed.push import enqueue_users
from common.queue import Queue
from common.sync.inbox import Inbox
from common.sync.jobs.sweep import hand_off
from common.types import EventStatus

__all__ = ["replay_events", "replay_pushes"]


async def replay_events(
    session_factory: async_sessionmaker[AsyncSession],
    queue: Queue | None,
    *,
    since: datetime | None = None,
    status: EventStatus | None = None,
    parked: bool = False,
    page_size: int = 1000,
) -> tuple[int, int]:
    """Reopen every matching event (`parked`: only those whose retries ran out for a passing
    reason), a page per transaction, and enqueue each page: (reopened, enqueued). Without a queue,
    or once it stops answering, the rest wait reopened for the sweeper."""
    reopened = enqueued = last_id = 0
    queue_up = queue is not None
    while True:
        async with session_factory() as session:
            ids = await Inbox(session).reopen(
                since=since, status=status, parked=parked, after_id=last_id, limit=page_size
            )
            await session.commit()
        if not ids:
            return reopened, enqueued
        reopened, last_id = reopened + len(ids), ids[-1]
        if queue_up and queue is not None:
            sent = await hand_off(queue, session_factory, ids)
            enqueued += sent
            queue_up = sent == len(ids)


async def replay_pushes(
    session_factory: async_sessionmaker[AsyncSession],
    queue: Queue | None,
    *,
    since: datetime | None = None,
    status: str | None = None,
) -> int:
    """Make the matching pushes pending again with a fresh day of retries and start their users'
    push jobs (without a queue, the push cron does); how many users."""
    async with session_factory() as session:
        users = await DeliveryRepository(session).reopen(since=since, status=status)
        await session.commit()
    if queue is not None and users:
        await enqueue_users(queue, users)
    return len(users)
