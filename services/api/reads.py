"""The smart read: cache when fresh enough, else one shared sync with WHOOP, else the stale cache.

A fresh read is one statement on a plain connection (connection, sync log and, when fresh enough,
the records; no transaction) and a string splice of the stored JSON texts; it makes no upstream call
and takes no lock. A refresh is shared:
concurrent readers of one user, type and window in this process await one task, and across
processes a lock per user and type lets the next holder reuse a sync that finished after it arrived.

A refresh spends WHOOP's budget only where it may (SPEC §3.1, §4): a connection that is not active
never calls (`stale_cache`: WHOOP access must be renewed); once the day's forecast passes the day's
budget, reads give way to the versions WHOOP announces (`stale_cache` naming the day's budget); and
each call is taken from the user's own share first (`stale_cache`, or 429 with nothing cached).
"""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.budget import DAY_BUDGET_REASON, day_forecast
from common.config import Settings
from common.db.repositories import RecordRepository, SyncLogRepository
from common.db.repositories.read_state import CachedRead, ReadState, ReadStateRepository, Window
from common.db.resilient import run_once_more
from common.db.types import utcnow
from common.locks import Locks, LockTimeout, LockUnavailable
from common.metrics import READS
from common.ratelimit import Priority, RateLimiter
from common.sync.freshness import live_rule
from common.sync.oplog import tag_calls
from common.sync.service import SyncService
from common.types import ConnectionStatus, DataType, SyncStatus, Trigger
from common.usershare import UserShare
from common.whoop.client import PAGE_SIZE
from common.whoop.errors import WhoopBudgetWait, WhoopError, WhoopShareSpent
from services.api.errors import ApiError
from services.api.schemas import NOTE_API, NOTE_CACHE, WARNING_STALE

log = structlog.get_logger()

FlightKey = tuple[uuid.UUID, DataType, datetime | None, datetime | None, int]
RENEW_ACCESS = "WHOOP access must be renewed: reconnect the WHOOP account"
# When a read that the day's forecast held back, with nothing cached, is told to come again.
DAY_BUDGET_RETRY = 60.0


@dataclass(frozen=True)
class ReadQuery:
    """One read request, validated."""

    data_type: DataType
    limit: int = 30
    start: datetime | None = None
    end: datetime | None = None
    force_refresh: bool = False


@dataclass(frozen=True)
class Answer:
    """A rendered answer: status code, JSON bytes, and the source for the metric."""

    status_code: int
    body: bytes
    source: str
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class FetchPlan:
    """What a refresh asks WHOOP for, and whether it confirms the type (SPEC 3.1)."""

    limit: int
    confirms: bool


def fetch_plan(query: ReadQuery) -> FetchPlan:
    """A read of the newest records fetches the newest page only (one call) and confirms the type;
    a read narrowed by `start`/`end` or a small `limit` fetches what it asked and confirms nothing.

    Only the newest records can have changed unannounced; older ones come from the cache.
    """
    if query.start is None and query.end is None and query.limit >= PAGE_SIZE:
        return FetchPlan(PAGE_SIZE, True)
    return FetchPlan(query.limit, False)


def render(status: str, records: list[str], metadata: dict[str, Any]) -> bytes:
    """The answer bytes: stored JSON texts spliced in as they are, metadata encoded by orjson."""
    return b"".join(
        (
            b'{"status":',
            orjson.dumps(status),
            b',"data":[',
            ",".join(records).encode(),
            b'],"metadata":',
            orjson.dumps(metadata),
            b"}",
        )
    )


def render_error(code: str, message: str) -> bytes:
    """An error-form body."""
    return orjson.dumps({"status": "error", "error": {"code": code, "message": message}})


def age_of(moment: datetime, now: datetime) -> tuple[int, float]:
    """Seconds (whole) and hours (two decimals) since `moment`, never negative."""
    seconds = max(0.0, (now - moment).total_seconds())
    return int(seconds), round(seconds / 3600, 2)


class SmartReader:
    """Answers `GET /api/v1/smart/{type}`; one per process, it owns the in-process flights."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        locks: Locks,
        make_syncer: Callable[[AsyncSession], SyncService],
        lock_timeout: float = 60.0,
        lock_wait: float = 45.0,
        *,
        limiter: RateLimiter | None = None,
        share: UserShare | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.locks = locks
        self.make_syncer = make_syncer
        # The app's budget (for the day's forecast) and each user's share of it.
        self.limiter, self.share = limiter, share
        self.lock_timeout, self.lock_wait = lock_timeout, lock_wait
        self._flights: dict[FlightKey, asyncio.Task[Answer]] = {}

    async def read(self, user_id: uuid.UUID, query: ReadQuery) -> Answer:
        """The answer for one read: cache, whoop_api, stale_cache, or an error form."""
        threshold = self.settings.threshold_seconds(query.data_type)
        now = utcnow()
        # No records are read when the cache is not going to be used anyway.
        fresh_after = None if query.force_refresh else now - timedelta(seconds=threshold)
        window = Window(query.limit, query.start, query.end)
        rule = live_rule(self.settings, query.data_type, now)
        found = await run_once_more(
            self._engine,
            lambda connection: ReadStateRepository(connection).read(
                user_id, query.data_type, window, fresh_after, rule
            ),
        )
        if found is None or found.state.connection_status is ConnectionStatus.REVOKED:
            raise ApiError(404, "not_connected", "No WHOOP account is connected for this user")
        if found.records is not None:
            READS.labels(query.data_type.value, "cache").inc()
            return self._from_cache(found, threshold, now)
        answer = await self._shared_refresh(user_id, query, found.state)
        READS.labels(query.data_type.value, answer.source).inc()
        return answer

    @property
    def _engine(self) -> AsyncEngine:
        return cast(AsyncEngine, self.session_factory.kw["bind"])

    @staticmethod
    def _from_cache(found: CachedRead, threshold: int, now: datetime) -> Answer:
        records = found.records or []
        last_sync_at = cast(datetime, found.state.last_sync_at)  # fresh: synced recently
        seconds, hours = age_of(last_sync_at, now)
        metadata = {
            "source": "cache",
            "record_count": len(records),
            "last_sync_at": last_sync_at,
            "time_since_sync_seconds": seconds,
            "time_since_sync_hours": hours,
            "threshold_seconds": threshold,
            "cached_enough": True,
            "note": NOTE_CACHE,
        }
        return Answer(200, render("success", records, metadata), "cache")

    async def _shared_refresh(
        self, user_id: uuid.UUID, query: ReadQuery, state: ReadState
    ) -> Answer:
        key: FlightKey = (user_id, query.data_type, query.start, query.end, query.limit)
        task = self._flights.get(key)
        if task is None:
            # A task of its own, so that a reader who hangs up does not cancel the others' fetch.
            task = asyncio.create_task(self._refresh(user_id, query, state, utcnow()))
            self._flights[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: FlightKey, task: asyncio.Task[Answer]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]

    async def _refresh(
        self, user_id: uuid.UUID, query: ReadQuery, state: ReadState, arrived: datetime
    ) -> Answer:
        reason, retry = None, None
        if state.connection_status is not ConnectionStatus.ACTIVE:
            reason = RENEW_ACCESS  # WHOOP refuses its tokens: a call would only fail
        elif await self._day_spent():
            # Our own rule, not WHOOP failing: with nothing cached, 429 and a time to come back.
            reason, retry = DAY_BUDGET_REASON, DAY_BUDGET_RETRY
        if reason is not None:
            async with self.session_factory() as session:
                return await self._fallback(session, user_id, query, reason, retry)
        name = f"refresh:{user_id}:{query.data_type.value}"
        try:
            async with (
                self.locks.lock(name, timeout=self.lock_timeout, blocking_timeout=self.lock_wait),
                self.session_factory() as session,
            ):
                return await self._refresh_locked(session, user_id, query, arrived)
        except LockTimeout as exc:
            async with self.session_factory() as session:
                reason = (
                    "The shared refresh lock is unavailable"
                    if isinstance(exc, LockUnavailable)
                    else "Another refresh of this data took too long"
                )
                return await self._fallback(session, user_id, query, reason)

    async def _day_spent(self) -> bool:
        """True once the day's forecast passes the day's budget (reads then give way)."""
        if self.limiter is None:
            return False
        try:
            forecast, budget = await day_forecast(self.limiter)
        except (RedisError, OSError):
            return False  # the budget itself cannot be read: its acquire says no on its own
        return forecast > budget

    async def _refresh_locked(
        self, session: AsyncSession, user_id: uuid.UUID, query: ReadQuery, arrived: datetime
    ) -> Answer:
        synced_at = await self._completed_since(session, user_id, query, arrived)
        await session.rollback()  # a read only: no transaction stays open across the WHOOP call
        if synced_at is None:
            synced_at, error = await self._sync(session, user_id, query)
            if error is not None:
                # Our own budget held the call back (the user's share, or no slot of the app's
                # within the wait): no call was made, so with nothing cached a 429, not a 502.
                retry = None
                if isinstance(error, WhoopShareSpent | WhoopBudgetWait):
                    retry = error.reset_after
                return await self._fallback(session, user_id, query, error.reason, retry)
        records = await RecordRepository(session, query.data_type).read_json(
            user_id, limit=query.limit, start=query.start, end=query.end
        )
        metadata = {
            "source": "whoop_api",
            "record_count": len(records),
            "synced_at": synced_at,
            "note": NOTE_API,
        }
        return Answer(200, render("success", records, metadata), "whoop_api")

    async def _completed_since(
        self, session: AsyncSession, user_id: uuid.UUID, query: ReadQuery, arrived: datetime
    ) -> datetime | None:
        """When another holder of the lock confirmed the type after we arrived, its sync time.

        Only a refresh of the newest records is reused: a narrow read fetches what it asked for.
        """
        data_type = query.data_type
        if not fetch_plan(query).confirms:
            return None
        entry = await SyncLogRepository(session).get(user_id, data_type)
        if entry is None or entry.sync_status != SyncStatus.SUCCESS.value:
            return None
        if entry.last_sync_at is None or entry.updated_at < arrived:
            return None
        if entry.last_fetch_at is not None and entry.last_sync_at < entry.last_fetch_at:
            return None  # the latest success was a narrow fetch: it confirmed nothing
        log.info("read.sync_reused", user_id=str(user_id), data_type=data_type.value)
        return entry.last_sync_at

    async def _sync(
        self, session: AsyncSession, user_id: uuid.UUID, query: ReadQuery
    ) -> tuple[datetime, WhoopError | None]:
        trigger = Trigger.FORCE_REFRESH if query.force_refresh else Trigger.READ
        tag_calls(trigger)
        plan = fetch_plan(query)
        charge = None if self.share is None else functools.partial(self.share.take, user_id)
        log.info("read.syncing", user_id=str(user_id), data_type=query.data_type.value)
        try:
            result = await self.make_syncer(session).sync_collection(
                user_id,
                query.data_type,
                trigger=trigger,
                start=query.start,
                end=query.end,
                limit=plan.limit,
                priority=Priority.INTERACTIVE,
                confirms=plan.confirms,
                charge=charge,
            )
        except WhoopError as exc:  # the service promises not to raise these; stay safe anyway
            await session.rollback()
            return utcnow(), exc
        await session.commit()
        return result.synced_at, result.error

    async def _fallback(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        query: ReadQuery,
        reason: str,
        retry_after: float | None = None,
    ) -> Answer:
        """The cache with a warning; with nothing cached, 502, or 429 with `retry_after` when our
        own rule held the call back (the user's share, the day's forecast)."""
        records = await RecordRepository(session, query.data_type).read_json(
            user_id, limit=query.limit, start=query.start, end=query.end
        )
        log.warning(
            "read.stale_cache",
            user_id=str(user_id),
            data_type=query.data_type.value,
            error=reason,
            records=len(records),
        )
        if not records and retry_after is not None:
            wait = str(max(1, math.ceil(retry_after)))
            body = render_error("rate_limited", f"Nothing is cached yet: {reason}")
            return Answer(429, body, "error", {"Retry-After": wait})
        if not records:
            message = f"WHOOP sync failed and nothing is cached: {reason}"
            return Answer(502, render_error("whoop_unavailable", message), "error")
        metadata = {
            "source": "stale_cache",
            "record_count": len(records),
            "warning": WARNING_STALE,
            "error": reason,
        }
        return Answer(200, render("success_with_warning", records, metadata), "stale_cache")
