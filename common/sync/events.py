"""WHOOP webhook events turned into fetches and writes (SPEC §4).

| event              | work                                                                    |
|--------------------|-------------------------------------------------------------------------|
| `sleep.updated`    | fetch the sleep; a night's sleep (not a nap) seen for the first time    |
|                    | also refreshes the newest cycles once (one collection page)             |
| `recovery.updated` | `id` is the sleep's UUID: the sleep for its `cycle_id` (a cached one    |
|                    | serves; one fetched for the first time is a new night, as above), then  |
|                    | `/v2/cycle/{id}/recovery`                                               |
| `workout.updated`  | fetch the workout                                                       |
| `*.deleted`        | remove the row; a deleted sleep takes its recovery along                |

Cycles have no webhooks, and no other event spends a call on one: a new night's sleep ends one
cycle and begins the next, so its one page of the newest cycles gives the closed cycle its final
values and brings in the open one. That page is a sync of the newest cycles: it confirms the type
(`last_sync_at`). A by-id fetch confirms nothing (SPEC §4.1): it moves only `last_fetch_at`.

Every fetch happens before any write. A 404 on a by-id fetch removes the row. The upserts are guarded
by WHOOP's `updated_at`, so handling an event twice writes once. When a new night's cycle page
fails, the sleep is not written either, so that the event's retry still sees a new night.

Events received close together share their fetches (SPEC §4): one user's events are handled one at
a time (a lock across processes), and a record WHOOP was asked for after the event was received
is taken from the cache instead of being fetched again for it; a cycle sync after the event was
received serves for its night. A new night's `sleep.updated` and `recovery.updated` thus cost the
sleep, the cycle page and the recovery: three calls, not five.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import ConnectionRepository, RecordRepository, SyncLogRepository
from common.db.types import utcnow
from common.locks import LockTimeout
from common.metrics import FRESHNESS_LAG
from common.ratelimit import Priority
from common.sync.results import Writes, status_of
from common.types import ConnectionStatus, DataType, EventStatus, SyncStatus, Trigger
from common.whoop.client import PAGE_SIZE
from common.whoop.errors import (
    WhoopError,
    WhoopNotFound,
    WhoopRateLimited,
    WhoopServerError,
    WhoopTransportError,
)

if TYPE_CHECKING:
    from common.sync.service import SyncService
    from common.whoop.client import UserClient

log = structlog.get_logger(__name__)

UPDATED = {"sleep.updated", "recovery.updated", "workout.updated"}
DELETED = {"sleep.deleted", "recovery.deleted", "workout.deleted"}
KNOWN_EVENTS = UPDATED | DELETED
ANY_TIME = datetime(1970, 1, 1, tzinfo=UTC)
# One user's events are handled one at a time. The holder renews its short lease while it works,
# so a worker that dies (SIGKILL, lost machine) holds the user's next events back for seconds, not
# for a minute of every job slot waiting on it.
EVENT_LOCK_LEASE = 6.0
EVENT_LOCK_WAIT = 10.0
TRANSIENT = (WhoopTransportError, WhoopServerError, WhoopRateLimited)


@dataclass(frozen=True)
class EventOutcome:
    """What handling an event came to: done, ignored (with why) or failed (with the WHOOP error)."""

    status: EventStatus
    reason: str | None = None
    error: WhoopError | None = None
    user_id: uuid.UUID | None = None
    written: dict[DataType, int] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        """True when the failure may pass by itself (timeout, 5xx, rate limit)."""
        return isinstance(self.error, TRANSIENT)


def is_known(event_type: str) -> bool:
    """True for the event types whoop-sync acts on."""
    return event_type in KNOWN_EVENTS


async def fetch_by_key(client: UserClient, data_type: DataType, key: Any, writes: Writes) -> None:
    """Fetch one record by its key into `writes`; a 404 removes the row instead."""
    try:
        if data_type is DataType.RECOVERY:
            model: Any = await client.cycle_recovery(int(key))
        else:
            model = await client.fetch(data_type, key)
    except WhoopNotFound:
        key_column = "cycle_id" if data_type is DataType.RECOVERY else "id"
        writes.delete(data_type, key_column, key, announced=False)
        if data_type is DataType.SLEEP:
            writes.delete(DataType.RECOVERY, "sleep_id", key, announced=False)
        return
    writes.upsert(data_type, model.raw)


class EventHandler:
    """Handles one event for a SyncService (its session, client and sync log)."""

    def __init__(self, service: SyncService) -> None:
        self.service = service

    async def handle(
        self, event_type: str, whoop_user_id: int, record_id: str, received_at: datetime | None
    ) -> EventOutcome:
        """Resolve the user, fetch what the event names, then write it all."""
        if not is_known(event_type):
            return EventOutcome(EventStatus.IGNORED, f"unknown event type {event_type}")
        try:
            key = uuid.UUID(record_id)
        except ValueError:
            return EventOutcome(EventStatus.IGNORED, "record id is not a UUID")
        connection = await ConnectionRepository(self.service.session).by_whoop_user(whoop_user_id)
        # End the read before WHOOP is called: no transaction stays open across the network.
        await self.service.session.commit()
        if connection is None:
            return EventOutcome(EventStatus.IGNORED, "unknown user")
        user_id = connection.user_id
        if connection.status == ConnectionStatus.REVOKED.value:
            return EventOutcome(EventStatus.IGNORED, "connection revoked", user_id=user_id)
        if event_type in DELETED:
            await self._delete(user_id, event_type, key)
            return EventOutcome(EventStatus.DONE, user_id=user_id)
        return await self._update(user_id, event_type, key, received_at)

    async def _delete(self, user_id: uuid.UUID, event_type: str, key: uuid.UUID) -> None:
        writes = Writes()
        if event_type == "sleep.deleted":
            writes.delete(DataType.SLEEP, "id", key)
            writes.delete(DataType.RECOVERY, "sleep_id", key)
        elif event_type == "recovery.deleted":
            writes.delete(DataType.RECOVERY, "sleep_id", key)
        else:
            writes.delete(DataType.WORKOUT, "id", key)
        await self.service.apply(user_id, writes)

    async def _update(
        self, user_id: uuid.UUID, event_type: str, key: uuid.UUID, received_at: datetime | None
    ) -> EventOutcome:
        locks = self.service.locks
        if locks is None:
            return await self._update_alone(user_id, event_type, key, received_at)
        acquired = False
        try:
            async with locks.lock(
                f"events:{user_id}",
                timeout=EVENT_LOCK_LEASE,
                blocking_timeout=EVENT_LOCK_WAIT,
                keep_alive=True,
            ):
                acquired = True
                return await self._update_alone(user_id, event_type, key, received_at)
        except LockTimeout:
            if acquired:
                raise
            # Another event of this user is taking long: go ahead, at worst fetching twice.
            log.info("event.lock_busy", user_id=str(user_id))
            return await self._update_alone(user_id, event_type, key, received_at)

    async def _update_alone(
        self, user_id: uuid.UUID, event_type: str, key: uuid.UUID, received_at: datetime | None
    ) -> EventOutcome:
        started, clock = utcnow(), time.monotonic()
        client = self.service.client(user_id, Priority.ANNOUNCED)
        fetch = _Fetcher(self.service.session, client, user_id, received_at)
        error = None
        try:
            if event_type == "workout.updated":
                await fetch.workout(key)
            else:
                await fetch.sleep(key, with_recovery=event_type != "sleep.updated")
        except WhoopError as exc:
            error = exc
        written = await self.service.apply(user_id, fetch.writes)
        for data_type, keys in fetch.asked.items():
            await RecordRepository(self.service.session, data_type).mark_checked(
                user_id, keys, started
            )
        await self._record(user_id, fetch, started, clock)
        if error is not None:
            primary = DataType(event_type.split(".")[0])
            await self.service.record(
                user_id, primary, Trigger.WEBHOOK, status_of(error), 0, started, clock, error.reason
            )
        await self.service.session.commit()  # inside the lock: the next event sees what was asked
        if written and received_at is not None and any(written.values()):
            FRESHNESS_LAG.observe(max(0.0, (utcnow() - received_at).total_seconds()))
        if error is None:
            return EventOutcome(EventStatus.DONE, user_id=user_id, written=written)
        return EventOutcome(EventStatus.FAILED, error.reason, error, user_id, written)

    async def _record(
        self, user_id: uuid.UUID, fetch: _Fetcher, started: datetime, clock: float
    ) -> None:
        """The attempts: by-id fetches confirm nothing (they move `last_fetch_at` only, SPEC
        4.1); a new night's page of the newest cycles is a sync of them and confirms the type."""
        for data_type, objects in fetch.writes.upserts.items():
            if data_type is DataType.CYCLE and fetch.night_cycles is not None:
                continue
            await self.service.record(
                user_id,
                data_type,
                Trigger.WEBHOOK,
                SyncStatus.SUCCESS,
                len(objects),
                started,
                clock,
                confirms=False,
            )
        if fetch.night_cycles is not None:
            await self.service.record(
                user_id,
                DataType.CYCLE,
                Trigger.WEBHOOK,
                SyncStatus.SUCCESS,
                fetch.night_cycles,
                started,
                clock,
            )


class _Fetcher:
    """The fetch phase of one event: what it asked WHOOP for, and what it will write."""

    def __init__(
        self,
        session: AsyncSession,
        client: UserClient,
        user_id: uuid.UUID,
        received_at: datetime | None,
    ) -> None:
        self.session, self.client, self.user_id = session, client, user_id
        self.received_at = received_at
        self.writes = Writes()
        self.asked: dict[DataType, list[Any]] = {}
        # How many cycles a new night's refresh fetched (None: no refresh was made).
        self.night_cycles: int | None = None

    async def _cached(
        self, data_type: DataType, key: Any, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """The stored object when WHOOP was asked for it after the event was received (or
        after `since`)."""
        since = since or self.received_at
        if since is None:
            return None
        repo = RecordRepository(self.session, data_type)
        found = await repo.fetched_since(self.user_id, key, since)
        await self.session.commit()  # no read transaction stays open across a WHOOP call
        return found

    async def _known(self, data_type: DataType, key: Any) -> bool:
        """True when the record is in the cache, however old."""
        found = await RecordRepository(self.session, data_type).get(key)
        await self.session.commit()
        return found is not None

    async def _by_key(self, data_type: DataType, key: Any) -> None:
        if await self._cached(data_type, key) is None:
            await fetch_by_key(self.client, data_type, key, self.writes)
            self.asked.setdefault(data_type, []).append(key)

    async def sleep(self, sleep_id: uuid.UUID, *, with_recovery: bool) -> None:
        """The sleep (for its cycle id), a new night's cycles, and its recovery when asked.

        A recovery event needs the sleep only for its cycle id, which never changes: a sleep
        already cached serves, fetched whenever (the sleep's own changes have their own events).
        """
        since = ANY_TIME if with_recovery else None
        sleep = await self._cached(DataType.SLEEP, sleep_id, since)
        if sleep is None:
            known = await self._known(DataType.SLEEP, sleep_id)
            try:
                sleep = (await self.client.fetch(DataType.SLEEP, sleep_id)).raw
            except WhoopNotFound:
                self.writes.delete(DataType.SLEEP, "id", sleep_id, announced=False)
                self.writes.delete(DataType.RECOVERY, "sleep_id", sleep_id, announced=False)
                return
            self.asked.setdefault(DataType.SLEEP, []).append(sleep_id)
            if not known and not sleep.get("nap", False):
                await self.night_cycles_page()  # raises before the sleep is kept to be written
            self.writes.upsert(DataType.SLEEP, sleep)
        if with_recovery:
            await self._by_key(DataType.RECOVERY, int(sleep["cycle_id"]))

    async def night_cycles_page(self) -> None:
        """One page of the newest cycles for a new night (the cycle it ends, the one it begins),
        unless the newest cycles were synced after the event was received."""
        if self.received_at is not None:
            state = await SyncLogRepository(self.session).get(self.user_id, DataType.CYCLE)
            await self.session.commit()
            synced = state.last_sync_at if state is not None else None
            if synced is not None and synced >= self.received_at:
                return
        cycles = [
            model.raw async for model in self.client.collection(DataType.CYCLE, limit=PAGE_SIZE)
        ]
        for cycle in cycles:
            self.writes.upsert(DataType.CYCLE, cycle)
        self.night_cycles = len(cycles)

    async def workout(self, workout_id: uuid.UUID) -> None:
        """The workout alone: cycles have no webhooks, and a workout is no new night."""
        if await self._cached(DataType.WORKOUT, workout_id) is not None:
            return
        try:
            workout = (await self.client.fetch(DataType.WORKOUT, workout_id)).raw
        except WhoopNotFound:
            self.writes.delete(DataType.WORKOUT, "id", workout_id, announced=False)
            return
        self.writes.upsert(DataType.WORKOUT, workout)
        self.asked.setdefault(DataType.WORKOUT, []).append(workout_id)
