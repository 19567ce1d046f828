"""Job functions, the same under arq and the in-process queue: plain ids in, re-fetch, upsert.

`ctx` carries `sync` (a SyncContext), `queue` (a Queue) and arq's `job_try`. A job that may succeed
later raises `arq.Retry(defer=…)`, deferred to WHOOP's reset after a 429; on its last try it closes
the event as `failed` with its error instead, visible in the sync log and replayable.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from arq import Retry

from common.config import Settings
from common.db.types import utcnow
from common.feed.jobs import deliver_app, drain_changes, prune_changes, push_due
from common.feed.push import DELIVER_APP
from common.metrics import JOBS as JOB_METRIC
from common.queue import JobSpec
from common.ratelimit import Priority
from common.sync.context import SyncContext
from common.sync.events import EventOutcome
from common.sync.inbox import PROCESS_EVENT, ClaimedEvent, Inbox, hand_off
from common.sync.reconcile import RECONCILE_WINDOW, reconcile, refetch_all_pending
from common.sync.tokens import refresh_expiring
from common.types import DataType, EventStatus, Trigger
from common.whoop.errors import WhoopError, WhoopRateLimited

__all__ = ["CRONS", "JOBS", "CronSpec", "backoff", "job_context"]

log = structlog.get_logger(__name__)

EVENT_TRIES = 8
# An event re-enqueued by the sweeper this many times over is poison: it is closed as failed.
POISON_ATTEMPTS = EVENT_TRIES * 3
TOKEN_REFRESH_AHEAD = timedelta(minutes=15)


def job_context(sync: SyncContext, queue: Any = None) -> dict[str, Any]:
    """The ctx dict jobs expect (arq adds `redis`, `job_try`, … to it)."""
    return {"sync": sync, "queue": queue}


def backoff(job_try: int, error: WhoopError | None = None) -> float:
    """Seconds before the next try: WHOOP's reset after a 429, else exponential with jitter."""
    if isinstance(error, WhoopRateLimited):
        return error.reset_after + random.uniform(0, 1)
    return min(300.0, 2.0**job_try) * random.uniform(0.5, 1.0)


async def _claim(sync: SyncContext, event_id: int) -> ClaimedEvent | None:
    async with sync.session_factory() as session:
        claimed = await Inbox(session).claim(event_id)
        await session.commit()
    return claimed


async def _close(sync: SyncContext, event_id: int, outcome: EventOutcome, last: bool) -> bool:
    """Write the outcome; True when the event stays pending for another try."""
    async with sync.session_factory() as session:
        inbox = Inbox(session)
        retry = outcome.status is EventStatus.FAILED and outcome.retryable and not last
        if retry:
            await inbox.postpone(event_id, outcome.reason or "failed")
        else:
            await inbox.close(event_id, outcome)
        await session.commit()
    return retry


async def process_webhook_event(ctx: dict[str, Any], event_id: int) -> str:
    """Fetch what one recorded webhook event names and write it; close the event."""
    sync: SyncContext = ctx["sync"]
    job_try = int(ctx.get("job_try", 1))
    claimed = await _claim(sync, event_id)
    if claimed is None:
        return "skipped"
    last = job_try >= EVENT_TRIES or claimed.attempts >= POISON_ATTEMPTS
    log_ = log.bind(event_id=event_id, trace_id=claimed.trace_id, event_type=claimed.event_type)
    try:
        async with sync.session_factory() as session:
            outcome = await sync.service(session).handle_event(
                claimed.event_type,
                claimed.whoop_user_id,
                claimed.record_id,
                received_at=claimed.received_at,
            )
            await session.commit()
    except Exception as exc:  # the database or a bug: retried like a WHOOP outage
        log_.exception("event.crashed")
        if not last:
            JOB_METRIC.labels(PROCESS_EVENT, "retried").inc()
            raise Retry(defer=backoff(job_try)) from exc
        async with sync.session_factory() as session:
            await Inbox(session).fail(event_id, f"{type(exc).__name__}: {exc}"[:500])
            await session.commit()
        JOB_METRIC.labels(PROCESS_EVENT, "failed").inc()
        return "failed"
    if await _close(sync, event_id, outcome, last):
        JOB_METRIC.labels(PROCESS_EVENT, "retried").inc()
        log_.info("event.retrying", error=outcome.reason, job_try=job_try)
        raise Retry(defer=backoff(job_try, outcome.error))
    result = "failed" if outcome.status is EventStatus.FAILED else "success"
    JOB_METRIC.labels(PROCESS_EVENT, result).inc()
    log_.info("event.processed", status=outcome.status.value, reason=outcome.reason)
    return outcome.status.value


async def backfill_user(ctx: dict[str, Any], user_id: str) -> str:
    """Pull BACKFILL_DAYS of every collection for a newly connected user."""
    sync: SyncContext = ctx["sync"]
    job_try = int(ctx.get("job_try", 1))
    async with sync.session_factory() as session:
        results = await sync.service(session).backfill(uuid.UUID(user_id))
        await session.commit()
    errors = [r.error for r in results if r.error is not None]
    transient = [e for e in errors if EventOutcome(EventStatus.FAILED, error=e).retryable]
    if transient and job_try < JOBS["backfill_user"].max_tries:
        JOB_METRIC.labels("backfill_user", "retried").inc()
        raise Retry(defer=backoff(job_try, transient[0]))
    JOB_METRIC.labels("backfill_user", "failed" if errors else "success").inc()
    return "failed" if errors else "success"


async def sync_type(ctx: dict[str, Any], user_id: str, data_type: str, trigger: str) -> str:
    """Sync one user's collection of one type over the trailing reconcile window."""
    sync: SyncContext = ctx["sync"]
    job_try = int(ctx.get("job_try", 1))
    async with sync.session_factory() as session:
        result = await sync.service(session).sync_collection(
            uuid.UUID(user_id),
            DataType(data_type),
            trigger=Trigger(trigger),
            start=utcnow() - RECONCILE_WINDOW,
            priority=Priority.BACKGROUND,
        )
        await session.commit()
    retryable = EventOutcome(EventStatus.FAILED, error=result.error).retryable
    if retryable and job_try < JOBS["sync_type"].max_tries:
        JOB_METRIC.labels("sync_type", "retried").inc()
        raise Retry(defer=backoff(job_try, result.error))
    JOB_METRIC.labels("sync_type", "success" if result.ok else "failed").inc()
    return result.status.value


async def sweep_inbox(ctx: dict[str, Any]) -> int:
    """Enqueue again the events still pending after INBOX_SWEEP_SECONDS (Redis was down, job lost)."""
    sync: SyncContext = ctx["sync"]
    cutoff = utcnow() - timedelta(seconds=sync.settings.inbox_sweep_seconds)
    async with sync.session_factory() as session:
        due = await Inbox(session).due(cutoff)
    if not due:
        return 0
    sent = await hand_off(ctx["queue"], sync.session_factory, due)
    log.info("inbox.swept", due=len(due), enqueued=sent)
    return sent


async def reconcile_users(ctx: dict[str, Any]) -> int:
    """Re-sync every connected user and type past its threshold."""
    return await reconcile(ctx["sync"])


async def refetch_pending_scores(ctx: dict[str, Any]) -> int:
    """Fetch again records still PENDING_SCORE."""
    return await refetch_all_pending(ctx["sync"])


async def refresh_tokens(ctx: dict[str, Any]) -> int:
    """Refresh access tokens before they expire."""
    sync: SyncContext = ctx["sync"]
    return await refresh_expiring(
        sync.session_factory, sync.cipher, sync.oauth, sync.locks, TOKEN_REFRESH_AHEAD
    )


@dataclass(frozen=True)
class CronSpec:
    """A periodic job and how often it runs (seconds, from the settings)."""

    name: str
    func: Callable[[dict[str, Any]], Awaitable[int]]
    every: Callable[[Settings], int]
    timeout: float


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(PROCESS_EVENT, process_webhook_event, max_tries=EVENT_TRIES, timeout=120),
        JobSpec("backfill_user", backfill_user, max_tries=5, timeout=900),
        JobSpec("sync_type", sync_type, max_tries=5, timeout=300),
        JobSpec(DELIVER_APP, deliver_app, max_tries=3, timeout=120),
    )
}
CRONS: list[CronSpec] = [
    CronSpec("sweep_inbox", sweep_inbox, lambda s: s.inbox_sweep_seconds, timeout=120),
    CronSpec("reconcile", reconcile_users, lambda s: s.reconcile_interval_seconds, timeout=900),
    CronSpec(
        "refetch_pending", refetch_pending_scores, lambda s: s.reconcile_interval_seconds, 900
    ),
    CronSpec("refresh_tokens", refresh_tokens, lambda s: 300, timeout=300),
    CronSpec("drain_changes", drain_changes, lambda s: 5, timeout=60),
    CronSpec("push_due", push_due, lambda s: 10, timeout=60),
    CronSpec("prune_changes", prune_changes, lambda s: 3600, timeout=600),
]
