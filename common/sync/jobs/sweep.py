"""The inbox's hand-offs: the sweep (what no job will take otherwise goes back to the queue), the
start of a process whose queue lives in memory, and the hand-off note after an enqueue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories import WebhookEventRepository
from common.db.types import utcnow
from common.queue import Queue, QueueUnavailable
from common.sync import refusals
from common.sync.context import SyncContext
from common.sync.inbox import PROCESS_EVENT, Inbox

__all__ = ["SWEEP_TICK_SECONDS", "UNSENT_GRACE", "hand_off", "resume_pending", "sweep_inbox"]

log = structlog.get_logger(__name__)

# The sweep runs at least this often, so that events the queue refused while Redis was away are
# handed on within seconds of its return, whatever INBOX_SWEEP_SECONDS says for lost jobs.
SWEEP_TICK_SECONDS = 5
# A never-handed-off event this young may still be in its webhook's hands.
UNSENT_GRACE = timedelta(seconds=1)
# Between an event's hand-off note and its job's due time in the queue: the webhook notes it just
# before enqueueing, and the processes' clocks may differ a little.
HANDOFF_SLACK = timedelta(seconds=5)
# What `_queue_behind` says when no job waits for a worker.
IDLE = timedelta(0)


async def sweep_inbox(ctx: dict[str, Any]) -> int:
    """Enqueue what no job will take otherwise: events never handed off (the queue refused them:
    Redis was away) at once, events whose job's lease ran out (the job died with its worker),
    and handed-off ones still pending after INBOX_SWEEP_SECONDS (a job lost with its worker or
    with Redis), or sooner when the queue shows that their jobs were started long ago (no job
    handed on before them still waits for a worker). A webhook refusal noted in Redis is
    written first."""
    sync: SyncContext = ctx["sync"]
    await _carry_refusal(sync)
    now = utcnow()
    sweep_after = timedelta(seconds=sync.settings.inbox_sweep_seconds)
    behind = await _queue_behind(ctx["queue"], now)
    if behind is None:  # the queue cannot say: a hand-off is lost after INBOX_SWEEP_SECONDS
        cutoff = now - sweep_after
    elif behind is IDLE:  # no job waits: one handed on a moment ago was started, or lost
        cutoff = now - min(sweep_after, HANDOFF_SLACK)
    else:  # jobs start in hand-off order: one handed on before the oldest waiting was started
        cutoff = now - behind - HANDOFF_SLACK
    async with sync.session_factory() as session:
        due = await Inbox(session).due(cutoff, unsent_before=now - UNSENT_GRACE)
    if not due:
        return 0
    sent = await hand_off(ctx["queue"], sync.session_factory, due)
    log.info(
        "inbox.swept",
        due=len(due),
        enqueued=sent,
        queue_behind_s=None if behind is None else round(behind.total_seconds(), 1),
    )
    return sent


async def _carry_refusal(sync: SyncContext) -> None:
    """Write a webhook refusal noted in Redis that its receiver could not write (it may have
    been restarted since): every process then knows the channel may have lost an event."""
    if sync.redis is None:
        return
    try:
        at = await refusals.noted(sync.redis)
        if at is None:
            return
        async with sync.session_factory() as session:
            await refusals.write(session, at)
            await session.commit()
        await refusals.forget(sync.redis, at)
    except Exception as exc:  # Redis or the database away: the next sweep tries again
        log.warning("inbox.refusal_not_carried", error=type(exc).__name__)
        return
    log.info("inbox.refusal_carried", refused_at=at.isoformat())


async def _queue_behind(queue: Queue, now: datetime) -> timedelta | None:
    """How long the oldest job due in the queue has waited for a worker (`IDLE` when none waits);
    None when the queue cannot say (then the hand-off fails too, and the unsent events wait)."""
    try:
        since = await queue.waiting_since()
    except QueueUnavailable:
        return None
    if since is None:
        return IDLE
    return max(timedelta(0), now - datetime.fromtimestamp(since, UTC))


async def resume_pending(queue: Queue, session_factory: async_sessionmaker[AsyncSession]) -> int:
    """Hand on every pending event no job holds: at the start of a process whose queue lives in
    memory, what the last one held was lost with it."""
    async with session_factory() as session:
        due = await Inbox(session).due(utcnow() + timedelta(seconds=1), limit=100_000)
    sent = await hand_off(queue, session_factory, due)
    if sent:
        log.info("inbox.resumed", count=sent)
    return sent


async def hand_off(
    queue: Queue, session_factory: async_sessionmaker[AsyncSession], event_ids: Sequence[int]
) -> int:
    """Enqueue events and note when; stops at the first queue failure (the sweeper retries later)."""
    sent: list[int] = []
    for event_id in event_ids:
        try:
            await queue.enqueue(PROCESS_EVENT, event_id)
        except QueueUnavailable as exc:
            log.warning("inbox.enqueue_failed", event_id=event_id, error=str(exc))
            break
        sent.append(event_id)
    if sent:
        try:
            async with session_factory() as session:
                await WebhookEventRepository(session).mark_enqueued(sent)
                await session.commit()
        except Exception:  # the jobs are queued; a missing mark only makes the sweep earlier
            log.warning("inbox.mark_enqueued_failed", count=len(sent))
    return len(sent)
