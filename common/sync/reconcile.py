"""Reconciliation checks, it does not poll (SPEC §4.2).

Every RECONCILE_INTERVAL one pass, at background priority, yielding to users' reads when the shared
budget runs short (the next pass carries on):

1. records still PENDING_SCORE whose threshold has passed since WHOOP was last asked are fetched again;
2. backfills that could not start or finish are finished;
3. events whose retries ran out for a passing reason go back to the queue;
4. a rotating slice of the connected users is audited, so that each is audited once per AUDIT_DAYS
   (while the day's forecast stays within the day's budget: past it, audits wait for the versions
   WHOOP announces, `common.budget`):
   a sync of each type over a trailing window. A record the audit writes that WHOOP changed longer
   ago than the liveness window (new, or newer than the cache) was never announced: it is counted
   (`whoopsync_audit_misses_total`), suspends webhook confirmation for a day, and the next passes
   audit every user once.

Each user is handled on its own: a failure (a token that cannot be decrypted, a WHOOP or database
error) is logged and counted, and the pass goes on with the next user.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common.budget import budget_usage, day_forecast
from common.config import Settings
from common.db.repositories import ChannelRepository, ConnectionRepository, RecordRepository
from common.db.types import utcnow
from common.metrics import AUDIT_MISSES, RECONCILE_FAILURES
from common.ratelimit import Priority, RateLimiter
from common.sync.context import SyncContext
from common.sync.freshness import SUSPENSION, WEBHOOK_TYPES
from common.sync.inbox import retry_parked_events
from common.sync.results import ALL_TYPES
from common.sync.service import PENDING_SCORE
from common.types import EventStatus, Trigger

__all__ = [
    "RECONCILE_WINDOW",
    "AuditPlan",
    "PassReport",
    "audit_slice_size",
    "audit_user",
    "budget_short",
    "finish_audit",
    "plan_audit",
    "reconcile",
    "refetch_all_pending",
]

log = structlog.get_logger(__name__)

RECONCILE_WINDOW = timedelta(days=3)
# Shares of the budget kept for interactive reads: below them, background work waits a round.
MINUTE_RESERVE = 0.25
DAY_RESERVE = 0.10
# A backfill younger than this may still be running in its own job.
BACKFILL_GRACE = timedelta(minutes=15)
BACKFILLS_PER_PASS = 50


async def budget_short(limiter: RateLimiter, per_minute: int, per_day: int) -> bool:
    """True when what is left of the WHOOP budget belongs to interactive reads."""
    minute_left, day_left = await limiter.remaining()
    return minute_left < per_minute * MINUTE_RESERVE or day_left < per_day * DAY_RESERVE


@dataclass
class PassReport:
    """What one reconciliation pass did."""

    pending_written: int = 0
    backfills: int = 0
    retried: int = 0
    audited: int = 0
    misses: int = 0
    failures: int = 0
    yielded: bool = False


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
    task: str, user_id: uuid.UUID, work: Callable[[], Awaitable[int]], report: PassReport
) -> int | None:
    """Run one user's share of a pass; a failure is logged and counted, never raised."""
    try:
        return await work()
    except Exception as exc:
        report.failures += 1
        RECONCILE_FAILURES.labels(task).inc()
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
                count = await sync.service(session).refetch_pending(user_id)
                await session.commit()
            return count

        written += await _isolated("refetch_pending", user_id, work, report) or 0
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
            async with sync.session_factory() as session:
                results = await sync.service(session).backfill(user_id)
            return int(all(r.ok for r in results))

        report.backfills += await _isolated("backfill", user_id, work, report) or 0


async def _retry_events(sync: SyncContext, report: PassReport) -> None:
    """Step 3: events whose retries ran out for a passing reason (rate limit, WHOOP 5xx).

    The inbox owns that re-enqueue (`common.sync.inbox`); its function is called from here.
    """
    report.retried += await retry_parked_events(sync.session_factory)


def audit_slice_size(active: int, elapsed_seconds: float, audit_days: float) -> int:
    """Users due for an audit after `elapsed_seconds` of the rotation, so that every one is
    audited once per AUDIT_DAYS (the fraction left over waits for the next pass)."""
    return min(active, math.floor(active * elapsed_seconds / (audit_days * 86400)))


def _rotation_step(active: int, audit_days: float) -> timedelta:
    """How far in time one user's audit moves the rotation."""
    return timedelta(days=audit_days) / max(1, active)


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
        if data_type in WEBHOOK_TYPES and not waiting:
            missed = sum(1 for changed in result.changed if changed <= announced_by)
            if missed:
                AUDIT_MISSES.labels(data_type.value).inc(missed)
                log.warning(
                    "audit.missed", user_id=str(user_id), data_type=data_type.value, records=missed
                )
            misses += missed
    return misses


@dataclass(frozen=True)
class AuditPlan:
    """The users one pass audits, where the rotation stood, and whether the round is wide."""

    users: list[uuid.UUID]
    cursor: uuid.UUID | None
    wide: bool
    rotation_at: datetime
    step: timedelta


async def plan_audit(session: AsyncSession, settings: Settings, now: datetime) -> AuditPlan:
    """The users due since the rotation's last step (every user after a miss), in user-id order
    from where it stopped, wrapping around at the end."""
    repo = ChannelRepository(session)
    state = await repo.read()
    active = await repo.active_count()
    interval = timedelta(seconds=settings.reconcile_interval_seconds)
    period = timedelta(days=settings.audit_days)
    # A first pass audits one interval's share; after a long stop, at most one round is due.
    rotation_at = max(state.audit_at or now - interval, now - period)
    elapsed = (now - rotation_at).total_seconds()
    size = active if state.audit_wide else audit_slice_size(active, elapsed, settings.audit_days)
    users = list(await repo.audit_slice(state.audit_cursor, size))
    if len(users) < size:  # wrap around to the start
        seen = set(users)
        users += [u for u in await repo.audit_slice(None, size - len(users)) if u not in seen]
    step = _rotation_step(active, settings.audit_days)
    return AuditPlan(users, state.audit_cursor, state.audit_wide, rotation_at, step)


async def finish_audit(
    session: AsyncSession,
    plan: AuditPlan,
    cursor: uuid.UUID | None,
    audited: int,
    *,
    stopped: bool,
    misses: int,
    now: datetime,
) -> None:
    """Move the rotation on by the users audited; a miss suspends the channel and makes the next
    round wide."""
    repo = ChannelRepository(session)
    if misses:
        await repo.suspend(now + SUSPENSION)
    # A wide round ends once everyone was audited; a miss in a narrow pass starts one.
    wide = (plan.wide and stopped) or (not plan.wide and misses > 0)
    at = now if plan.wide else min(now, plan.rotation_at + plan.step * audited)
    await repo.move_audit(cursor, wide=wide, at=at)


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

        found = await _isolated("audit", user_id, work, report)
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
