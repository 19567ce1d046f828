"""The sync service: what a sync *is*. Fetch from WHOOP, guarded upsert, sync log.

One service for the worker and the read API alike, over one session (the unit of work).
`sync_collection` only flushes and the caller commits. No method holds a transaction across a WHOOP
call of its own making: fetches come first, writes after, so that a slow WHOOP never keeps a row (or
SQLite's single write lock) held. `handle_event`, `backfill` and `refetch_pending` read before they
fetch, so they commit that read first: give them a session without pending work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.config import Settings
from common.db.models import WhoopConnection
from common.db.repositories import (
    Attempt,
    ChannelRepository,
    RecordRepository,
    SyncLogRepository,
    UpsertSummary,
    record_key,
)
from common.db.repositories.records import parse_time
from common.db.types import utcnow
from common.ratelimit import Priority
from common.sync.events import EventHandler, EventOutcome, fetch_by_key
from common.sync.results import ALL_TYPES, SyncResult, Writes, status_of
from common.types import DataType, SyncStatus, Trigger, UpsertResult
from common.whoop.errors import WhoopError, WhoopShareSpent

if TYPE_CHECKING:
    from common.locks import Locks
    from common.whoop.client import Charge, TokenSource, UserClient, WhoopClient

log = structlog.get_logger(__name__)

PENDING_SCORE = "PENDING_SCORE"


class SyncService:
    """Fetch → guarded upsert → sync log, for one unit of work (one session)."""

    def __init__(
        self,
        session: AsyncSession,
        whoop: WhoopClient,
        tokens: Callable[[uuid.UUID], TokenSource],
        settings: Settings,
        locks: Locks | None = None,
    ) -> None:
        self.session = session
        self.whoop = whoop
        self.tokens = tokens
        self.settings = settings
        # Serialises one user's events across processes, so that close events share fetches.
        self.locks = locks

    def client(
        self, user_id: uuid.UUID, priority: Priority, charge: Charge | None = None
    ) -> UserClient:
        """A WHOOP client acting for one app user (`charge`: each call taken from their share)."""
        return self.whoop.for_user(self.tokens(user_id), priority=priority, charge=charge)

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
        """Guarded upsert: a stored record with the same or a newer `updated_at` stays."""
        return await RecordRepository(self.session, data_type).upsert(user_id, objects)

    async def apply(self, user_id: uuid.UUID, writes: Writes) -> dict[DataType, int]:
        """Remove, then upsert, what a fetch phase collected; records written per type."""
        for data_type, column, value in writes.deletes:
            repo = RecordRepository(self.session, data_type)
            bury_absent = (data_type, column, value) not in writes.unannounced
            await repo.delete_where(user_id, column, value, bury_absent=bury_absent)
        written: dict[DataType, int] = {}
        for data_type in ALL_TYPES:
            if data_type in writes.upserts:
                summary = await self.write(user_id, data_type, writes.upserts[data_type])
                written[data_type] = summary.written
        return written

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
        await SyncLogRepository(self.session).record(
            Attempt(
                user_id, data_type, trigger, status, records, started, duration_ms, error, confirms
            )
        )

    async def handle_event(
        self,
        event_type: str,
        whoop_user_id: int,
        record_id: str,
        *,
        received_at: datetime | None = None,
    ) -> EventOutcome:
        """Carry out one webhook event (SPEC §4); unknown users and types come back ignored."""
        return await EventHandler(self).handle(event_type, whoop_user_id, record_id, received_at)

    async def backfill(self, user_id: uuid.UUID, days: int | None = None) -> list[SyncResult]:
        """Pull every collection over the last `days` (BACKFILL_DAYS), at background priority.

        Each type is its own unit of work: the session is committed after each one, so that a
        failure of one type keeps what the others wrote and no write lock spans the next fetch.
        """
        due = await self.session.scalar(
            select(WhoopConnection.backfill_pending_since).where(WhoopConnection.user_id == user_id)
        )
        await self.session.commit()
        since = utcnow() - timedelta(days=self.settings.backfill_days if days is None else days)
        results = []
        for data_type in ALL_TYPES:
            result = await self.sync_collection(
                user_id,
                data_type,
                trigger=Trigger.BACKFILL,
                start=since,
                priority=Priority.BACKGROUND,
            )
            await self.session.commit()
            results.append(result)
        if all(r.ok for r in results):  # else reconciliation finishes it (SPEC 3.2)
            await ChannelRepository(self.session).finish_backfill(user_id, due)
            await self.session.commit()
        return results

    async def refetch_pending(self, user_id: uuid.UUID, per_type: int = 25) -> int:
        """Fetch again the records still PENDING_SCORE; how many came back scored or changed.

        Only records not written for longer than their type's threshold: WHOOP sends a webhook
        when it scores a record, so a pending record fetched recently needs nothing more.
        """
        now = utcnow()
        keys = {
            data_type: await RecordRepository(self.session, data_type).keys_in_state(
                user_id,
                PENDING_SCORE,
                limit=per_type,
                synced_before=now - timedelta(seconds=self.settings.threshold_seconds(data_type)),
            )
            for data_type in ALL_TYPES
        }
        await self.session.commit()  # end the read before WHOOP is called
        started, clock = utcnow(), time.monotonic()
        client = self.client(user_id, Priority.BACKGROUND)
        writes, error = Writes(), None
        try:
            for data_type, type_keys in keys.items():
                for key in type_keys:
                    await fetch_by_key(client, data_type, key, writes)
        except WhoopError as exc:
            error = exc
        written = await self.apply(user_id, writes)
        if error is None:  # every one was asked again: each waits another threshold
            for data_type, type_keys in keys.items():
                repo = RecordRepository(self.session, data_type)
                await repo.mark_checked(user_id, type_keys, now)
        for data_type, count in written.items():
            await self.record(  # by id: confirms nothing (SPEC 4.1)
                user_id,
                data_type,
                Trigger.RECONCILE,
                SyncStatus.SUCCESS,
                count,
                started,
                clock,
                confirms=False,
            )
        if error is not None:
            log.warning("sync.pending_refetch_failed", error=error.reason)
        return sum(written.values())
