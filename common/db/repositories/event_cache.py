"""What an event's job reads before it calls WHOOP: its connection (read by the claim itself) and
what its fetch phase needs to know of the cache, in one statement and no transaction
held: the stored sleep (a recovery needs only its cycle id, and a sleep never seen is a new
night), when WHOOP was last asked for the sleep, its recovery or the workout, and when the user's
newest cycles were last synced."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Uuid, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import Recovery, Sleep, SyncLog, WhoopConnection, Workout
from common.types import DataType


@dataclass(frozen=True)
class EventConnection:
    """What an event's job needs of its connection: whom it is for, whether it is active, and
    the stored access token (encrypted), so that its WHOOP calls read the row no more."""

    user_id: uuid.UUID
    status: str
    token_version: int
    access_token_enc: str | None
    expires_at: datetime | None


# The connection's columns an event reads, in `EventConnection`'s order.
CONNECTION_COLUMNS = ("user_id", "status", "token_version", "access_token_enc", "expires_at")


def event_connection_columns(whoop_user_id: Any) -> list[Any]:
    """The `EventConnection` of the account `whoop_user_id` (a value or a column of another
    table) as scalar subqueries, for a statement that reads it along with something else."""
    table: Any = WhoopConnection.__table__
    return [
        select(table.c[name]).where(table.c.whoop_user_id == whoop_user_id).scalar_subquery()
        for name in CONNECTION_COLUMNS
    ]


def event_connection(values: Sequence[Any]) -> EventConnection | None:
    """The `EventConnection` read by `event_connection_columns`, None when there is no row."""
    user_id, status, version, token, expires = values
    if user_id is None:
        return None
    return EventConnection(user_id, status, int(version or 0), token, expires)


@dataclass(frozen=True)
class EventCache:
    """The cache as one event's fetch phase sees it (times are `synced_at`: the last ask)."""

    sleep: dict[str, Any] | None
    sleep_user: uuid.UUID | None
    sleep_fetched_at: datetime | None
    recovery_fetched_at: datetime | None
    workout_fetched_at: datetime | None
    cycles_synced_at: datetime | None


def _one(column: Any, *where: Any) -> Any:
    return select(column).where(*where).limit(1).scalar_subquery()


def event_cache_columns(key: Any, user_id: Any) -> list[Any]:
    """The `EventCache` around record `key` of app user `user_id` (values or columns of another
    statement) as scalar subqueries, for a statement that reads it along with something else."""
    return [
        _one(Sleep.data, Sleep.id == key),
        _one(Sleep.user_id, Sleep.id == key),
        _one(Sleep.synced_at, Sleep.id == key, Sleep.user_id == user_id),
        _one(Recovery.synced_at, Recovery.sleep_id == key, Recovery.user_id == user_id),
        _one(Workout.synced_at, Workout.id == key, Workout.user_id == user_id),
        _one(
            SyncLog.last_sync_at,
            SyncLog.user_id == user_id,
            SyncLog.data_type == DataType.CYCLE.value,
        ),
    ]


def read_event_cache(values: Sequence[Any]) -> EventCache:
    """The `EventCache` read by `event_cache_columns`."""
    data, sleep_user, sleep_at, recovery_at, workout_at, cycles_at = values
    return EventCache(
        sleep=None if data is None else dict(orjson.loads(data)),
        sleep_user=sleep_user,
        sleep_fetched_at=sleep_at,
        recovery_fetched_at=recovery_at,
        workout_fetched_at=workout_at,
        cycles_synced_at=cycles_at,
    )


# Built once: the statement object keeps its cache key and compiled form.
_CACHE = select(
    *event_cache_columns(bindparam("key", type_=Uuid()), bindparam("user_id", type_=Uuid()))
)


async def event_cache(session: AsyncSession, user_id: uuid.UUID, key: uuid.UUID) -> EventCache:
    """The cache around record `key` (a sleep's or a workout's id) of one user, in one SELECT."""
    connection = await session.connection()
    row = (await connection.execute(_CACHE, {"key": key, "user_id": user_id})).one()
    return read_event_cache(tuple(row))
