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

Here: the pass's plan (the budget's reserves, the audit's rotation); the pass itself, which
commits each user's share on its own, is the `reconcile` cron's (`common.sync.jobs.reconcile`).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from common.config import Settings
from common.db.repositories import ChannelRepository
from common.ratelimit import RateLimiter
from common.sync.freshness import SUSPENSION

__all__ = [
    "BACKFILLS_PER_PASS",
    "BACKFILL_GRACE",
    "RECONCILE_WINDOW",
    "AuditPlan",
    "PassReport",
    "audit_slice_size",
    "budget_short",
    "finish_audit",
    "plan_audit",
]

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


def audit_slice_size(active: int, elapsed_seconds: float, audit_days: float) -> int:
    """Users due for an audit after `elapsed_seconds` of the rotation, so that every one is
    audited once per AUDIT_DAYS (the fraction left over waits for the next pass)."""
    return min(active, math.floor(active * elapsed_seconds / (audit_days * 86400)))


def _rotation_step(active: int, audit_days: float) -> timedelta:
    """How far in time one user's audit moves the rotation."""
    return timedelta(days=audit_days) / max(1, active)


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
