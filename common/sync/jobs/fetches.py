"""The jobs that sync a user's collections: a new connection's backfill, one type on demand."""

from __future__ import annotations

import uuid
from typing import Any

from arq import Retry

from common.db.types import utcnow
from common.metrics import JOBS as JOB_METRIC
from common.ratelimit import Priority
from common.sync.context import SyncContext
from common.sync.events import EventOutcome
from common.sync.jobs.backfill import run_backfill
from common.sync.jobs.events import backoff
from common.sync.oplog import tag_calls
from common.sync.reconcile import RECONCILE_WINDOW
from common.types import DataType, EventStatus, Trigger

__all__ = ["BACKFILL_TRIES", "SYNC_TYPE_TRIES", "backfill_user", "sync_type"]

BACKFILL_TRIES = 5
SYNC_TYPE_TRIES = 5


async def backfill_user(ctx: dict[str, Any], user_id: str) -> str:
    """Pull BACKFILL_DAYS of every collection for a newly connected user."""
    sync: SyncContext = ctx["sync"]
    job_try = int(ctx.get("job_try", 1))
    tag_calls(Trigger.BACKFILL)
    results = await run_backfill(sync, uuid.UUID(user_id))
    errors = [r.error for r in results if r.error is not None]
    transient = [e for e in errors if EventOutcome(EventStatus.FAILED, error=e).retryable]
    if transient and job_try < BACKFILL_TRIES:
        JOB_METRIC.labels("backfill_user", "retried").inc()
        raise Retry(defer=backoff(job_try, transient[0]))
    JOB_METRIC.labels("backfill_user", "failed" if errors else "success").inc()
    return "failed" if errors else "success"


async def sync_type(ctx: dict[str, Any], user_id: str, data_type: str, trigger: str) -> str:
    """Sync one user's collection of one type over the trailing reconcile window."""
    sync: SyncContext = ctx["sync"]
    job_try = int(ctx.get("job_try", 1))
    tag_calls(trigger)
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
    if retryable and job_try < SYNC_TYPE_TRIES:
        JOB_METRIC.labels("sync_type", "retried").inc()
        raise Retry(defer=backoff(job_try, result.error))
    JOB_METRIC.labels("sync_type", "success" if result.ok else "failed").inc()
    return result.status.value
