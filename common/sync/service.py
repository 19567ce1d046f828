"""The sync service: what a sync *is*. Fetch from WHOOP, guarded upsert, sync log.

One service for the worker and the read API alike, over one session (the unit of work): its
methods write and the caller commits (a backfill, `common.sync.backfill`, yields where its job
commits, page by page, for its progress). No
method holds a transaction across a WHOOP call of its own making: fetches come first, writes after,
so that a slow WHOOP never keeps a row (or SQLite's single write lock) held. `handle_event` reads
before it fetches and end that read first: give them a session without
pending work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.config import Settings
from common.db.repositories import (
    Attempt,
    ConnectionRepository,
    RecordRepository,
    SyncLogRepository,
    UpsertSummary,
    record_key,
)
from common.db.repositories.event_cache import EventCache, EventConnection, event_cache
from common.db.repositories.record_kinds import parse_time
from common.db.types import utcnow
from common.metrics import FRESHNESS_LAG
from common.ratelimit import Priority
from common.sync.events import EventOutcome, event_key, fetch_event
from common.sync.ownership import Written, holds, upsert_owned, write_owned
from common.sync.results import SyncResult, Writes, status_of
from common.sync.tokens import ConnectionTokens
from common.types import ConnectionStatus, DataType, EventStatus, SyncStatus, Trigger, UpsertResult
from common.whoop.errors import WhoopError, WhoopShareSpent

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from common.db.repositories.base import Rider
    from common.whoop.client import Charge, TokenSource, UserClient, WhoopClient

    # What becomes of the event, written with its records (`handle_event`'s `settle`): a write
    # it made, or one it hands back to ride with the sync log's statement.
    Settle = Callable[[AsyncSession, EventOutcome], Awaitable[Rider | None]]

log = structlog.get_logger(__name__)


class SyncService:
    """Fetch → guarded upsert → sync log, for one unit of work (one session)."""

    def __init__(
        self,
        session: AsyncSession,
        whoop: WhoopClient,
        tokens: Callable[[uuid.UUID], TokenSource],
        settings: Settings,
        lookups: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.session = session
        # Sessions for a look-up of its own (autocommit on PostgreSQL): the event's cache look.
        self.lookups = lookups
        self.whoop = whoop
        self.tokens = tokens
        self.settings = settings

    def client(
        self,
        user_id: uuid.UUID,
        priority: Priority,
        charge: Charge | None = None,
        known: EventConnection | None = None,
    ) -> UserClient:
        """A WHOOP client acting for one app user (`charge`: each call taken from their share;
        `known`: the connection as just read, whose stored token serves without reading it again)."""
        tokens = self.tokens(user_id)
        active = known is not None and known.status == ConnectionStatus.ACTIVE.value
        if known is not None and active and isinstance(tokens, ConnectionTokens):
            tokens.seed(known.access_token_enc, known.expires_at, known.token_version)
        return self.whoop.for_user(tokens, priority=priority, charge=charge)

    async def sync_collection(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        *,
        trigger: Trigger,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
        priority: Priority,
        confirms: bool = True,
        charge: Charge | None = None,
    ) -> SyncResult:
        """Fetch a collection (newest first, paged), upsert it, record the attempt; never raises WhoopError.

        `confirms` says whether the fetch covered the newest records (SPEC 3.1): only then does the
        type's `last_sync_at` move; any success moves `last_fetch_at`. `charge` takes each call
        from an app user's share (a read); a spent share is no sync failure: nothing is recorded.

        The first statement after the fetch is a write, so a caller on SQLite should not keep a read
        transaction open across this call (commit first) or the write may meet a stale snapshot.
        """
        started, clock = utcnow(), time.monotonic()
        client = self.client(user_id, priority, charge)
        try:
            objects = [
                model.raw
                async for model in client.collection(data_type, start=start, end=end, limit=limit)
            ]
        except WhoopShareSpent as exc:
            log.info("sync.share_spent", data_type=data_type.value, trigger=trigger.value)
            return SyncResult(data_type, 0, 0, started, exc, SyncStatus.FAILED)
        except WhoopError as exc:
            status = status_of(exc)
            await self.record(user_id, data_type, trigger, status, 0, started, clock, exc.reason)
            log.warning(
                "sync.failed", data_type=data_type.value, trigger=trigger.value, error=exc.reason
            )
            return SyncResult(data_type, 0, 0, started, exc, status)
        summary = await self.write(user_id, data_type, objects)
        await self.record(
            user_id,
            data_type,
            trigger,
            SyncStatus.SUCCESS,
            len(objects),
            started,
            clock,
            confirms=confirms,
        )
        log.info(
            "sync.succeeded",
            data_type=data_type.value,
            trigger=trigger.value,
            fetched=len(objects),
            written=summary.written,
        )
        changed = tuple(
            moment
            for obj in objects
            if summary.results.get(record_key(data_type, obj), UpsertResult.UNCHANGED)
            is not UpsertResult.UNCHANGED
            and (moment := parse_time(obj["updated_at"])) is not None
        )
        return SyncResult(data_type, len(objects), summary.written, started, changed=changed)

    async def write(
        self, user_id: uuid.UUID, data_type: DataType, objects: Iterable[Mapping[str, Any]]
    ) -> UpsertSummary:
        """Guarded upsert: a stored record with the same or a newer `updated_at` stays; each
        record goes to the holder of its WHOOP account at the write (SPEC §4)."""
        return await upsert_owned(self.session, data_type, objects, user_id)

    async def apply(
        self,
        user_id: uuid.UUID,
        writes: Writes,
        *,
        account: int | None = None,
        rider: Rider | None = None,
    ) -> Written:
        """Remove, then upsert, what a fetch phase collected, to the holder of the WHOOP account
        at the write (`common.sync.ownership`); `rider` goes with the last upsert if it can."""
        return await write_owned(self.session, user_id, writes, account=account, rider=rider)

    async def record_all(
        self, user_id: uuid.UUID, attempts: list[Attempt], *, rider: Rider | None = None
    ) -> None:
        """Add attempts to the history and make them the latest states, unless the user no
        longer holds a connection (erased, moved or switched away meanwhile); `rider`'s write
        goes out with them, or alone."""
        if attempts and await holds(self.session, user_id):
            await SyncLogRepository(self.session).record_all(attempts, rider=rider)
        elif rider is not None:
            await rider.run(self.session)

    async def record(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        trigger: Trigger,
        status: SyncStatus,
        records: int,
        started: datetime,
        clock: float,
        error: str | None = None,
        *,
        confirms: bool = True,
    ) -> None:
        """Add an attempt to the history and make it the latest state of its user and type."""
        duration_ms = int((time.monotonic() - clock) * 1000)
        attempt = Attempt(
            user_id, data_type, trigger, status, records, started, duration_ms, error, confirms
        )
        await self.record_all(user_id, [attempt])

    async def handle_event(
        self,
        event_type: str,
        whoop_user_id: int,
        record_id: str,
        *,
        received_at: datetime | None = None,
        connection: EventConnection | None = None,
        cache: EventCache | None = None,
        settle: Settle | None = None,
    ) -> EventOutcome:
        """Carry out one webhook event (SPEC §4): the cache looked at (one statement, its read
        ended), WHOOP asked (no transaction open), then one write: the records, their changes,
        the sync log and, through `settle`, what becomes of the event. The caller commits.

        `connection` is the event's connection as the claim read it (else it is read here),
        `cache` the cache around its record as the claim read it, while that serves (else it is
        looked at here); unknown users and types, and revoked connections, come back ignored.
        """
        outcome = await self._handle(
            event_type, whoop_user_id, record_id, received_at, connection, cache, settle
        )
        if outcome.status is EventStatus.IGNORED and settle is not None:  # before any fetch
            close = await settle(self.session, outcome)
            if close is not None:
                await close.run(self.session)
        return outcome

    async def _handle(
        self,
        event_type: str,
        whoop_user_id: int,
        record_id: str,
        received_at: datetime | None,
        connection: EventConnection | None,
        cache: EventCache | None,
        settle: Settle | None,
    ) -> EventOutcome:
        """The event's outcome; ignored only before any fetch (the caller settles it then).
        Once WHOOP has answered, what becomes of the event is settled (`settle`) before the
        write, so that its close and the sync log go out with the last upsert (one statement on
        PostgreSQL), or after the write when they cannot."""
        key, ignored = event_key(event_type, record_id)
        if key is None:
            return EventOutcome(EventStatus.IGNORED, ignored)
        if connection is None:
            connection = await ConnectionRepository(self.session).for_event(whoop_user_id)
        if connection is None:
            return EventOutcome(EventStatus.IGNORED, "unknown user")
        user_id = connection.user_id
        if connection.status == ConnectionStatus.REVOKED.value:
            return EventOutcome(EventStatus.IGNORED, "connection revoked", user_id=user_id)
        if cache is None:
            cache = await self._event_cache(user_id, key)
        client = self.client(user_id, Priority.ANNOUNCED, known=connection)
        fetched = await fetch_event(client, event_type, key, cache, received_at)
        error = fetched.error
        if error is None:
            outcome = EventOutcome(EventStatus.DONE, user_id=user_id)
        else:
            outcome = EventOutcome(EventStatus.FAILED, error.reason, error, user_id)
        close = None if settle is None else await settle(self.session, outcome)
        attempts = fetched.attempts(user_id, event_type)
        recording = SyncLogRepository(self.session).recording(attempts, rider=close)
        written = await self.apply(user_id, fetched.writes, account=whoop_user_id, rider=recording)
        if not written.carried:
            await self.record_all(user_id, attempts, rider=close)
        if written.holder is not None:
            for data_type, keys in fetched.asked.items():
                summary = written.summaries.get(data_type)
                unchanged = [
                    k
                    for k in keys
                    if summary is None
                    or summary.results.get(k, UpsertResult.UNCHANGED) is UpsertResult.UNCHANGED
                ]
                await RecordRepository(self.session, data_type).mark_checked(
                    written.holder.user_id, unchanged, fetched.started
                )
        counts = written.counts
        if received_at is not None and any(counts.values()):
            FRESHNESS_LAG.observe(max(0.0, (utcnow() - received_at).total_seconds()))
        return replace(outcome, written=counts)

    async def _event_cache(self, user_id: uuid.UUID, key: uuid.UUID) -> EventCache:
        """The cache around an event's record, read in one statement with no transaction held
        across WHOOP's calls."""
        if self.lookups is not None:  # autocommit on PostgreSQL
            async with self.lookups() as look:
                return await event_cache(look, user_id, key)
        cache = await event_cache(self.session, user_id, key)
        await self.session.rollback()  # a read only: nothing stays open across WHOOP's calls
        return cache
