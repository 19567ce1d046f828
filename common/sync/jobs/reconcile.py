"""The reconciliation pass (SPEC §4.2, `common.sync.reconcile`): each user's share of it is a unit
of work of its own, committed here, so that one user's failure never undoes another's."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from common.budget import budget_usage, day_forecast
from common.db.repositories import ChannelRepository, ConnectionRepository, RecordRepository
from common.db.repositories.ops import AUDIT_MISS, RECONCILE_FAILURE
from common.db.types import utcnow
from common.metrics import AUDIT_MISSES, RECONCILE_FAILURES
from common.ratelimit import Priority
from common.sync.backfill import restart_failed
from common.sync.context import SyncContext
from common.sync.freshness import WEBHOOK_TYPES
from common.sync.inbox import retry_parked_events
from common.sync.jobs.backfill import run_backfill
from common.sync.oplog import note_incident
from common.sync.pending import PENDING_SCORE, refetch_pending
from common.sync.reconcile import (
    BACKFILL_GRACE,
    BACKFILLS_PER_PASS,
    RECONCILE_WINDOW,
    PassReport,
    budget_short,
    finish_audit,
    plan_audit,
)
from common.sync.results import ALL_TYPES
from common.types import EventStatus, Trigger

__all__ = ["audit_user", "reconcile", "refetch_all_pending"]

log = structlog.get_logger(__name__)


async def _short(sync: SyncContext) -> bool:
    settings = sync.settings
    return await budget_short(
        sync.limiter, settings.whoop_rate_limit_per_minute, settings.whoop_rate_limit_per_day
    )


async def _day_spent(sync: SyncContext) -> bool:
    """True once the day's forecast passes the day's budget: audits then give way."""
    forecast, budget = await day_forecast(sync.limiter)
    return forecast > budget


async def _isolated(
    task: str,
    user_id: uuid.UUID,
    work: Callable[[], Awaitable[int]],
    report: PassReport,
    sync: SyncContext | None = None,
) -> int | None:
    """Run one user's share of a pass; a failure is logged and counted, never raised."""
    try:
        return await work()
    except Exception as exc:
        report.failures += 1
        RECONCILE_FAILURES.labels(task).inc()
        if sync is not None:
            await note_incident(sync.session_factory, RECONCILE_FAILURE, task)
        log.exception(
            "reconcile.user_failed", task=task, user_id=str(user_id), error=type(exc).__name__
        )
        return None


async def _pending_users(sync: SyncContext, now: datetime) -> list[uuid.UUID]:
    users: set[uuid.UUID] = set()
    async with sync.session_factory() as session:
        for data_type in ALL_TYPES:
            cutoff = now - timedelta(seconds=sync.settings.threshold_seconds(data_type))
            repo = RecordRepository(session, data_type)
            users.update(await repo.users_in_state(PENDING_SCORE, cutoff))
    return sorted(users)


async def refetch_all_pending(sync: SyncContext, report: PassReport | None = None) -> int:
    """Fetch again the records still PENDING_SCORE past their threshold; how many were written."""
    report = report or PassReport()
    written = 0
    for user_id in await _pending_users(sync, utcnow()):
        if await _short(sync):
            report.yielded = True
            break

        async def work(user_id: uuid.UUID = user_id) -> int:
            async with sync.session_factory() as session:
                count = await refetch_pending(sync.service(session), user_id)
                await session.commit()
            return count

        written += await _isolated("refetch_pending", user_id, work, report, sync) or 0
    return written


async def _finish_backfills(sync: SyncContext, now: datetime, report: PassReport) -> None:
    async with sync.session_factory() as session:
        due = await ChannelRepository(session).pending_backfills(
            now - BACKFILL_GRACE, BACKFILLS_PER_PASS
        )
    for user_id in due:
        if await _short(sync):
            report.yielded = True
            return

        async def work(user_id: uuid.UUID = user_id) -> int:
            results = await run_backfill(sync, user_id)
            return int(all(r.ok for r in results))

        report.backfills += await _isolated("backfill", user_id, work, report, sync) or 0


async def _retry_events(sync: SyncContext, report: PassReport) -> None:
    """Step 3: events whose retries ran out for a passing reason (rate limit, WHOOP 5xx).

    The inbox owns that re-enqueue (`common.sync.inbox`); its function is called from here.
    """
    async with sync.session_factory() as session:
        report.retried += await retry_parked_events(session)
        await session.commit()


async def audit_user(
    sync: SyncContext, user_id: uuid.UUID, now: datetime, window: timedelta = RECONCILE_WINDOW
) -> int:
    """Sync each type of one user over the trailing window; how many records no webhook announced.

    A record counts as unannounced when WHOOP changed it longer ago than the liveness window and
    the user has no event still waiting (an event in the queue may be the one announcing it).
    """
    announced_by = now - timedelta(seconds=sync.settings.webhook_liveness_seconds)
    async with sync.session_factory() as session:
        connection = await ConnectionRepository(session).get(user_id)
        waiting = connection is not None and any(
            e.status == EventStatus.PENDING.value
            for e in await ChannelRepository(session).open_events(connection.whoop_user_id)
        )
    misses = 0
    for data_type in ALL_TYPES:
        async with sync.session_factory() as session:
            result = await sync.service(session).sync_collection(
                user_id,
                data_type,
                trigger=Trigger.RECONCILE,
                start=now - window,
                priority=Priority.BACKGROUND,
            )
            await session.commit()
        if result.error is not None:
            raise result.error
        if data_type is ALL_TYPES[-1]:  # a backfill given up is asked for again (SPEC 3.2)
            async with sync.session_factory() as session:
                if await restart_failed(session, user_id):
                    log.info("backfill.restarted", user_id=str(user_id))
                await session.commit()
        if data_type in WEBHOOK_TYPES and not waiting:
            missed = sum(1 for changed in result.changed if changed <= announced_by)
            if missed:
                AUDIT_MISSES.labels(data_type.value).inc(missed)
                await note_incident(sync.session_factory, AUDIT_MISS, data_type.value, missed)
                log.warning(
                    "audit.missed", user_id=str(user_id), data_type=data_type.value, records=missed
                )
            misses += missed
    return misses


async def _audit(sync: SyncContext, now: datetime, window: timedelta, report: PassReport) -> None:
    async with sync.session_factory() as session:
        plan = await plan_audit(session, sync.settings, now)
    cursor, stopped, audited = plan.cursor, False, 0
    for user_id in plan.users:
        if await _short(sync) or await _day_spent(sync):
            report.yielded = stopped = True
            break

        async def work(user_id: uuid.UUID = user_id) -> int:
            return await audit_user(sync, user_id, now, window)

        found = await _isolated("audit", user_id, work, report, sync)
        cursor = user_id
        audited += 1
        report.audited += 1
        report.misses += found or 0
    async with sync.session_factory() as session:
        await finish_audit(
            session, plan, cursor, audited, stopped=stopped, misses=report.misses, now=now
        )
        await session.commit()


async def reconcile(
    sync: SyncContext, *, now: datetime | None = None, window: timedelta = RECONCILE_WINDOW
) -> PassReport:
    """One reconciliation pass (SPEC §4.2); what it did."""
    now = now or utcnow()
    report = PassReport()
    report.pending_written = await refetch_all_pending(sync, report)
    await _finish_backfills(sync, now, report)
    await _retry_events(sync, report)
    await _audit(sync, now, window, report)
    async with sync.session_factory() as session:
        await budget_usage(sync.limiter, session)  # the budget's gauges, for this process
    log.info(
        "reconcile.passed",
        pending_written=report.pending_written,
        backfills=report.backfills,
        retried=report.retried,
        audited=report.audited,
        misses=report.misses,
        failures=report.failures,
        yielded=report.yielded,
    )
    return report
