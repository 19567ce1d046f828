"""The webhook event's job: claim (one statement, committed, that on PostgreSQL also reads the
cache), fetch (no transaction open), one write (the records, their changes, the sync log and the
event's fate, committed together).

An event's job holds the event's lease while it runs. A job that may succeed later raises
`arq.Retry(defer=…)`, keeping the lease through the wait; when no WHOOP budget is left (ours or
WHOOP's 429) it hands the event to a new job after the reset instead, which is not a try. After its last try a passing failure (WHOOP
5xx, timeout, the database away) parks the event for the reconciliation pass; anything else closes
it as `failed` with its error, visible and replayable.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from arq import Retry
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories.base import Rider
from common.db.repositories.event_cache import EventCache
from common.db.resilient import is_outage
from common.locks import LockTimeout
from common.metrics import JOBS as JOB_METRIC
from common.queue import QueueUnavailable
from common.ratelimit import DEFAULT_MAX_WAIT, Priority
from common.sync.context import SyncContext
from common.sync.events import EventOutcome
from common.sync.inbox import PROCESS_EVENT, ClaimedEvent, Inbox
from common.sync.oplog import tag_calls
from common.types import EventStatus, Trigger
from common.whoop.client import DEFAULT_TIMEOUT
from common.whoop.errors import WhoopError, WhoopRateLimited
from common.whoop.retry import RetryPolicy

__all__ = ["EVENT_TIMEOUT", "EVENT_TRIES", "backoff", "process_webhook_event"]

log = structlog.get_logger(__name__)

EVENT_TRIES = 8
# An event re-enqueued by the sweeper this many times over is poison: it is closed as failed.
POISON_ATTEMPTS = EVENT_TRIES * 3
# Seconds before a job runs again when the database was away for its claim or its close (1, 2, …).
DB_RETRY_MAX = 5.0
# One user's events are handled one at a time. The holder renews its short lease while it works,
# so a worker that dies (SIGKILL, lost machine) holds the user's next events back for seconds, not
# for a minute of every job slot waiting on it.
EVENT_LOCK_LEASE = 6.0
EVENT_LOCK_WAIT = 10.0
# An event's job may not be stopped by its own timeout with its records fetched: the timeout
# covers the most an event can spend on WHOOP (a new night's recovery: three calls, each with
# every retry waiting out the whole budget wait and its request timeout, and the retries' own
# bound), the wait for the user's lock and a token refresh's.
_CALL_SECONDS = (
    RetryPolicy().attempts
    * (DEFAULT_MAX_WAIT[Priority.ANNOUNCED] + float(DEFAULT_TIMEOUT.read or 10.0))
    + RetryPolicy().total_seconds
)
EVENT_TIMEOUT = 3 * _CALL_SECONDS + EVENT_LOCK_WAIT + 60


def backoff(job_try: int, error: WhoopError | None = None, scale: float = 1.0) -> float:
    """Seconds before the next try: WHOOP's reset after a 429, else exponential with jitter."""
    if isinstance(error, WhoopRateLimited):
        return error.reset_after + random.uniform(0, 1)
    return min(300.0, 2.0**job_try) * random.uniform(0.5, 1.0) * scale


async def _claim(sync: SyncContext, event_id: int, holder: str) -> ClaimedEvent | None:
    async with sync.lookups() as session:  # one statement: autocommit on PostgreSQL
        claimed = await Inbox(session).claim(event_id, holder, sync.settings.inbox_lease_seconds)
        await session.commit()
    return claimed


async def _hold(
    sync: SyncContext, event_id: int, holder: str, delay: float, error: str, *, attempt: bool
) -> None:
    """Keep the event leased through the wait for its next try (the sweeper leaves it alone)."""
    lease = delay + sync.settings.inbox_lease_seconds
    try:
        async with sync.session_factory() as session:
            await Inbox(session).hold(event_id, holder, lease, error, attempt=attempt)
            await session.commit()
    except Exception as exc:  # the claim's lease still runs out, then the sweeper takes over
        log.warning("event.hold_failed", event_id=event_id, error=type(exc).__name__)


async def _release(sync: SyncContext, event_id: int, holder: str) -> None:
    try:
        async with sync.session_factory() as session:
            await Inbox(session).release(event_id, holder)
            await session.commit()
    except Exception as exc:  # the lease runs out by itself
        log.warning("event.release_failed", event_id=event_id, error=type(exc).__name__)


async def _park(sync: SyncContext, event_id: int, error: str) -> str:
    async with sync.session_factory() as session:
        await Inbox(session).park(event_id, error[:500])
        await session.commit()
    JOB_METRIC.labels(PROCESS_EVENT, "parked").inc()
    log.warning("event.parked", event_id=event_id, error=error)
    return "parked"


async def _retry_or_park(
    sync: SyncContext, event_id: int, holder: str, job_try: int, error: str, cause: Any, last: bool
) -> str:
    """A passing failure outside the write (the database away): another try after a back-off,
    or, after the last, parked."""
    if last:
        return await _park(sync, event_id, error)
    delay = backoff(job_try, cause, sync.settings.retry_backoff_scale)
    await _hold(sync, event_id, holder, delay, error, attempt=True)
    JOB_METRIC.labels(PROCESS_EVENT, "retried").inc()
    log.info("event.retrying", event_id=event_id, error=error, job_try=job_try)
    raise Retry(defer=delay)


@dataclass
class _Fate:
    """What becomes of a claimed event, decided from its outcome and written in the same
    transaction as its records (`settle`); what is left to do once that commits (`then`)."""

    ctx: dict[str, Any]
    event_id: int
    holder: str
    job_try: int
    last: bool
    result: str = "success"
    delay: float | None = None
    ticket: str | None = None

    async def settle(self, session: AsyncSession, outcome: EventOutcome) -> Rider | None:
        """Hold, park or defer the event now; a close is handed back to go out with the write's
        last statement (`SyncService.handle_event`)."""
        inbox, settings = Inbox(session), self.ctx["sync"].settings
        error = outcome.reason or "failed"
        if outcome.status is EventStatus.FAILED and isinstance(outcome.error, WhoopRateLimited):
            # No budget (ours or WHOOP's): a new job after the reset, the try taken back.
            self.result, self.delay = "deferred", backoff(1, outcome.error)
            self.ticket = f"{self.event_id}:{uuid.uuid4().hex[:16]}"
            lease = self.delay + settings.inbox_lease_seconds
            await inbox.hold(self.event_id, self.ticket, lease, error, attempt=False)
        elif outcome.status is EventStatus.FAILED and outcome.retryable and self.last:
            self.result = "parked"
            await inbox.park(self.event_id, error[:500])
        elif outcome.status is EventStatus.FAILED and outcome.retryable:
            self.result = "retried"
            self.delay = backoff(self.job_try, outcome.error, settings.retry_backoff_scale)
            lease = self.delay + settings.inbox_lease_seconds
            await inbox.hold(self.event_id, self.holder, lease, error, attempt=True)
        else:
            self.result = "failed" if outcome.status is EventStatus.FAILED else "success"
            return inbox.closing(self.event_id, outcome)
        return None

    async def then(self, outcome: EventOutcome, log_: Any) -> str:
        JOB_METRIC.labels(PROCESS_EVENT, self.result).inc()
        if self.result == "deferred":
            assert self.delay is not None
            try:
                await self.ctx["queue"].enqueue(
                    PROCESS_EVENT, self.event_id, self.ticket, _defer_by=self.delay
                )
            except QueueUnavailable as exc:  # the lease ends after the wait, then the sweep
                log_.warning("event.defer_failed", error=str(exc))
            log_.info("event.deferred", seconds=round(self.delay, 1))
            return "deferred"
        if self.result == "parked":
            log_.warning("event.parked", error=outcome.reason)
            return "parked"
        if self.result == "retried":
            log_.info("event.retrying", error=outcome.reason, job_try=self.job_try)
            raise Retry(defer=self.delay)
        log_.info("event.processed", status=outcome.status.value, reason=outcome.reason)
        return outcome.status.value


@asynccontextmanager
async def _one_at_a_time(
    sync: SyncContext, claimed: ClaimedEvent
) -> AsyncIterator[EventCache | None]:
    """One user's events are handled one at a time across processes (SPEC 4: close events share
    their fetches; an update and a delete of one record never overlap). A holder that takes
    long is waited for EVENT_LOCK_WAIT, then gone ahead of (at worst fetching twice).

    The block is given the cache as the claim read it while that view still serves: not when
    another holder had the lock (what it wrote is newer), nor when it was gone ahead of; the
    job then looks at the cache again. A holder that came and went in the moment between the
    claim and the lock can make the job fetch what that holder just fetched, never miss it."""
    if claimed.connection is None:
        yield claimed.cache
        return
    acquired = False
    try:
        async with sync.locks.lock(
            f"events:{claimed.connection.user_id}",
            timeout=EVENT_LOCK_LEASE,
            blocking_timeout=EVENT_LOCK_WAIT,
            keep_alive=True,
        ) as waited:
            acquired = True
            yield None if waited else claimed.cache
    except LockTimeout:
        if acquired:
            raise
        log.info("event.lock_busy", user_id=str(claimed.connection.user_id))
        yield None


async def process_webhook_event(ctx: dict[str, Any], event_id: int, ticket: str = "") -> str:
    """Fetch what one recorded webhook event names and write it; close the event.

    The job leases the event under `ticket` (a follow-up after a budget wait) or its job id. With
    the database away where the job cannot even note a retry (its claim, its close), the same job
    runs again in a few seconds: its holder is unchanged, so it takes its own lease back (or finds
    the event closed) instead of leaving the event to the next sweep.
    """
    job_try = int(ctx.get("job_try", 1))
    tag_calls(Trigger.WEBHOOK)
    try:
        return await _process(ctx, event_id, ticket, job_try)
    except Retry:
        raise
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning("event.database_unavailable", event_id=event_id, error=type(exc).__name__)
        raise Retry(defer=min(DB_RETRY_MAX, float(job_try))) from exc


async def _process(ctx: dict[str, Any], event_id: int, ticket: str, job_try: int) -> str:
    """Claim (one statement, committed), fetch (no transaction open), one write (the records,
    their changes, the sync log and the event's fate, committed together)."""
    sync: SyncContext = ctx["sync"]
    holder = ticket or str(ctx.get("job_id") or uuid.uuid4().hex)
    claimed = await _claim(sync, event_id, holder)
    if claimed is None:
        return "skipped"
    last = job_try >= EVENT_TRIES or claimed.attempts >= POISON_ATTEMPTS
    fate = _Fate(ctx, event_id, holder, job_try, last)
    log_ = log.bind(event_id=event_id, trace_id=claimed.trace_id, event_type=claimed.event_type)
    try:
        async with (
            sync.leases.keep(event_id, holder),
            _one_at_a_time(sync, claimed) as cache,
            sync.session_factory() as session,
        ):
            outcome = await sync.service(session).handle_event(
                claimed.event_type,
                claimed.whoop_user_id,
                claimed.record_id,
                received_at=claimed.received_at,
                connection=claimed.connection,
                cache=cache,
                settle=fate.settle,
            )
            await session.commit()
    except asyncio.CancelledError:  # stopped (shutdown): give the event back now
        await _release(sync, event_id, holder)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        if is_outage(exc):  # the database went away mid-job: passing, like a WHOOP outage
            log_.warning("event.database_unavailable", error=type(exc).__name__)
            return await _retry_or_park(sync, event_id, holder, job_try, error, None, last)
        log_.exception("event.crashed")  # a bug or bad data: retried, then closed as failed
        if not last:
            JOB_METRIC.labels(PROCESS_EVENT, "retried").inc()
            delay = backoff(job_try, scale=sync.settings.retry_backoff_scale)
            await _hold(sync, event_id, holder, delay, error, attempt=True)
            raise Retry(defer=delay) from exc
        async with sync.session_factory() as session:
            await Inbox(session).fail(event_id, error)
            await session.commit()
        JOB_METRIC.labels(PROCESS_EVENT, "failed").inc()
        return "failed"
    return await fate.then(outcome, log_)
