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
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from common.db.repositories.event_cache import EventCache
from common.db.repositories.sync_log import Attempt
from common.db.types import utcnow
from common.sync.results import Writes, status_of
from common.types import DataType, EventStatus, SyncStatus, Trigger
from common.whoop.client import PAGE_SIZE
from common.whoop.errors import (
    WhoopError,
    WhoopNotFound,
    WhoopRateLimited,
    WhoopServerError,
    WhoopTransportError,
)

if TYPE_CHECKING:
    from common.whoop.client import UserClient

log = structlog.get_logger(__name__)

UPDATED = {"sleep.updated", "recovery.updated", "workout.updated"}
DELETED = {"sleep.deleted", "recovery.deleted", "workout.deleted"}
KNOWN_EVENTS = UPDATED | DELETED
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


@dataclass
class Fetched:
    """The fetch phase of one event: what it asked WHOOP for and what it will write."""

    writes: Writes = field(default_factory=Writes)
    asked: dict[DataType, list[Any]] = field(default_factory=dict)
    # How many cycles a new night's refresh fetched (None: no refresh was made).
    night_cycles: int | None = None
    error: WhoopError | None = None
    started: datetime = field(default_factory=utcnow)
    clock: float = field(default_factory=time.monotonic)

    def attempts(self, user_id: uuid.UUID, event_type: str) -> list[Attempt]:
        """The sync log's attempts: by-id fetches confirm nothing (they move `last_fetch_at`
        only, SPEC 4.1); a new night's page of the newest cycles is a sync of them and
        confirms the type; a failure is recorded against the event's own type."""
        ms = int((time.monotonic() - self.clock) * 1000)

        def attempt(data_type: DataType, records: int, confirms: bool) -> Attempt:
            return Attempt(
                user_id,
                data_type,
                Trigger.WEBHOOK,
                SyncStatus.SUCCESS,
                records,
                self.started,
                ms,
                confirms=confirms,
            )

        attempts = [
            attempt(data_type, len(objects), False)
            for data_type, objects in self.writes.upserts.items()
            if not (data_type is DataType.CYCLE and self.night_cycles is not None)
        ]
        if self.night_cycles is not None:
            attempts.append(attempt(DataType.CYCLE, self.night_cycles, True))
        if self.error is not None:
            primary = DataType(event_type.split(".")[0])
            status = status_of(self.error)
            attempts.append(
                Attempt(
                    user_id,
                    primary,
                    Trigger.WEBHOOK,
                    status,
                    0,
                    self.started,
                    ms,
                    self.error.reason,
                )
            )
        return attempts


def event_key(event_type: str, record_id: str) -> tuple[uuid.UUID | None, str | None]:
    """The record's UUID, or why the event is ignored."""
    if not is_known(event_type):
        return None, f"unknown event type {event_type}"
    try:
        return uuid.UUID(record_id), None
    except ValueError:
        return None, "record id is not a UUID"


async def fetch_event(
    client: UserClient,
    event_type: str,
    key: uuid.UUID,
    cache: EventCache,
    received_at: datetime | None,
) -> Fetched:
    """Everything one event needs from WHOOP, before any write; a WHOOP failure is kept in
    `error` with what was fetched before it."""
    fetch = _Fetcher(client, cache, received_at)
    try:
        if event_type in DELETED:
            fetch.deleted(event_type, key)
        elif event_type == "workout.updated":
            await fetch.workout(key)
        else:
            await fetch.sleep(key, with_recovery=event_type != "sleep.updated")
    except WhoopError as exc:
        fetch.fetched.error = exc
    return fetch.fetched


class _Fetcher:
    """The fetch phase of one event over a view of the cache taken before it (`EventCache`)."""

    def __init__(self, client: UserClient, cache: EventCache, received_at: datetime | None):
        self.client, self.cache, self.received_at = client, cache, received_at
        self.fetched = Fetched()
        self.writes = self.fetched.writes

    def _since_received(self, moment: datetime | None) -> bool:
        """WHOOP was asked after the event was received (the cache serves for it)."""
        return None not in (moment, self.received_at) and moment >= self.received_at  # type: ignore[operator]

    def _asked(self, data_type: DataType, key: Any) -> None:
        self.fetched.asked.setdefault(data_type, []).append(key)

    def deleted(self, event_type: str, key: uuid.UUID) -> None:
        """A `*.deleted` event: rows to remove, nothing to fetch."""
        if event_type == "sleep.deleted":
            self.writes.delete(DataType.SLEEP, "id", key)
            self.writes.delete(DataType.RECOVERY, "sleep_id", key)
        elif event_type == "recovery.deleted":
            self.writes.delete(DataType.RECOVERY, "sleep_id", key)
        else:
            self.writes.delete(DataType.WORKOUT, "id", key)

    async def sleep(self, sleep_id: uuid.UUID, *, with_recovery: bool) -> None:
        """The sleep (for its cycle id), a new night's cycles, and its recovery when asked.

        A recovery event needs the sleep only for its cycle id, which never changes: a sleep
        already cached serves, fetched whenever (the sleep's own changes have their own events).
        """
        cache = self.cache
        sleep = cache.sleep if with_recovery and cache.sleep_fetched_at is not None else None
        if sleep is None and not with_recovery and self._since_received(cache.sleep_fetched_at):
            return
        if sleep is None:
            try:
                sleep = (await self.client.fetch(DataType.SLEEP, sleep_id)).raw
            except WhoopNotFound:
                self.writes.delete(DataType.SLEEP, "id", sleep_id, announced=False)
                self.writes.delete(DataType.RECOVERY, "sleep_id", sleep_id, announced=False)
                return
            self._asked(DataType.SLEEP, sleep_id)
            if cache.sleep is None and not sleep.get("nap", False):
                await self.night_cycles_page()  # raises before the sleep is kept to be written
            self.writes.upsert(DataType.SLEEP, sleep)
        if with_recovery and not self._since_received(cache.recovery_fetched_at):
            cycle_id = int(sleep["cycle_id"])
            await fetch_by_key(self.client, DataType.RECOVERY, cycle_id, self.writes)
            self._asked(DataType.RECOVERY, cycle_id)

    async def night_cycles_page(self) -> None:
        """One page of the newest cycles for a new night (the cycle it ends, the one it begins),
        unless the newest cycles were synced after the event was received."""
        if self._since_received(self.cache.cycles_synced_at):
            return
        cycles = [
            model.raw async for model in self.client.collection(DataType.CYCLE, limit=PAGE_SIZE)
        ]
        for cycle in cycles:
            self.writes.upsert(DataType.CYCLE, cycle)
        self.fetched.night_cycles = len(cycles)

    async def workout(self, workout_id: uuid.UUID) -> None:
        """The workout alone: cycles have no webhooks, and a workout is no new night."""
        if self._since_received(self.cache.workout_fetched_at):
            return
        try:
            workout = (await self.client.fetch(DataType.WORKOUT, workout_id)).raw
        except WhoopNotFound:
            self.writes.delete(DataType.WORKOUT, "id", workout_id, announced=False)
            return
        self.writes.upsert(DataType.WORKOUT, workout)
        self._asked(DataType.WORKOUT, workout_id)
