"""The safety net for events that never arrived: re-sync what is past its threshold.

Every RECONCILE_INTERVAL, each connected user and type whose last successful sync is older than the
type's threshold is re-synced over a trailing window, at background priority. When the shared WHOOP
budget runs short, the sweep stops and the next one carries on: interactive reads come first.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog

from common.db.repositories import ConnectionRepository, SyncLogRepository
from common.db.types import utcnow
from common.ratelimit import Priority, RateLimiter
from common.sync.context import SyncContext
from common.sync.inbox import retry_parked_events
from common.sync.results import ALL_TYPES
from common.types import DataType, Trigger

__all__ = ["RECONCILE_WINDOW", "budget_short", "reconcile", "refetch_all_pending"]

log = structlog.get_logger(__name__)

RECONCILE_WINDOW = timedelta(days=3)
# Shares of the budget kept for interactive reads: below them, background work waits a round.
MINUTE_RESERVE = 0.25
DAY_RESERVE = 0.10


async def budget_short(limiter: RateLimiter, per_minute: int, per_day: int) -> bool:
    """True when what is left of the WHOOP budget belongs to interactive reads."""
    minute_left, day_left = await limiter.remaining()
    return minute_left < per_minute * MINUTE_RESERVE or day_left < per_day * DAY_RESERVE


async def _stale_pairs(sync: SyncContext, now: datetime) -> list[tuple[uuid.UUID, DataType]]:
    async with sync.session_factory() as session:
        users = [c.user_id for c in await ConnectionRepository(session).active()]
        if not users:
            return []
        log_repo = SyncLogRepository(session)
        stale = {
            data_type: set(
                await log_repo.stale(
                    data_type,
                    now - timedelta(seconds=sync.settings.threshold_seconds(data_type)),
                    users,
                )
            )
            for data_type in ALL_TYPES
        }
    return [(u, t) for u in users for t in ALL_TYPES if u in stale[t]]


async def _short(sync: SyncContext) -> bool:
    settings = sync.settings
    return await budget_short(
        sync.limiter, settings.whoop_rate_limit_per_minute, settings.whoop_rate_limit_per_day
    )


async def reconcile(
    sync: SyncContext, *, now: datetime | None = None, window: timedelta = RECONCILE_WINDOW
) -> int:
    """Re-sync every stale (user, type) over the trailing window; how many syncs ran."""
    now = now or utcnow()
    done = 0
    await retry_parked_events(sync.session_factory)  # events whose retries ran out (WHOOP 5xx)
    for user_id, data_type in await _stale_pairs(sync, now):
        if await _short(sync):
            log.info("reconcile.yielded", done=done)
            break
        async with sync.session_factory() as session:
            await sync.service(session).sync_collection(
                user_id,
                data_type,
                trigger=Trigger.RECONCILE,
                start=now - window,
                priority=Priority.BACKGROUND,
            )
            await session.commit()
        done += 1
    return done


async def refetch_all_pending(sync: SyncContext) -> int:
    """Fetch again every connected user's records still PENDING_SCORE; how many were written."""
    async with sync.session_factory() as session:
        users = [c.user_id for c in await ConnectionRepository(session).active()]
    written = 0
    for user_id in users:
        if await _short(sync):
            break
        async with sync.session_factory() as session:
            written += await sync.service(session).refetch_pending(user_id)
            await session.commit()
    return written
