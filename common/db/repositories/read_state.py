"""The read API's hot path: a user's connection, one type's sync state and, when the type is
confirmed recently enough (a sync, or a live webhook channel: SPEC §4.1), the records' JSON texts,
all in one statement.

On PostgreSQL (asyncpg) it is one SQL statement sent straight to the driver's connection, outside a
transaction: one round trip, prepared once per connection (asyncpg's statement cache), no BEGIN or
ROLLBACK, and no statement built per request; a connection lost to a restart is noticed there
(`common.db.resilient`). Elsewhere (SQLite) the same answer comes from two
SQLAlchemy Core statements built once per type and window shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db.models import ChannelState, SyncLog, WebhookEvent, WhoopConnection
from common.db.repositories.channel import (
    OPEN_STATUSES,
    ROW_ID,
    LiveRule,
    OpenEvent,
    user_held_back,
)
from common.db.repositories.record_kinds import KINDS
from common.db.resilient import driver_call
from common.types import ConnectionStatus, DataType, SyncStatus


@dataclass(frozen=True)
class ReadState:
    """What a read needs to choose between cache and WHOOP."""

    connection_status: ConnectionStatus
    # When the type was last confirmed: by a sync, or by the webhook channel (then later).
    last_sync_at: datetime | None
    sync_status: SyncStatus
    confirmed_by: str | None = None


@dataclass(frozen=True)
class CachedRead:
    """The state, and the records when the last successful sync came after `fresh_after`."""

    state: ReadState
    records: list[str] | None


@dataclass(frozen=True)
class Window:
    """Which records a read wants: newest first, at most `limit`, `start` inclusive, `end` not."""

    limit: int = 30
    start: datetime | None = None
    end: datetime | None = None


# The records are read only when the state says the cache is fresh enough (CASE evaluates the
# subquery lazily), so a stale read costs no more than before. Only names from the models and the
# DataType enum are filled in; every value is a $n parameter: $1 user, $2 fresh_after (NULL: no
# records), $3 limit, $4 live_after (NULL: the channel confirms nothing here), $5 refused_before,
# $6 now, then start and end when the window has them. `w.at` is the channel's confirmation: the
# newest receipt, when the channel is live and nothing of this user holds it back (SPEC 4.1): a
# connection not active, an event pending or failed, a failed sync, a backfill not finished.
_POSTGRES_TEMPLATE = """
SELECT c.status, s.last_sync_at, s.sync_status, w.at,
       CASE WHEN GREATEST(s.last_sync_at, w.at) > $2 THEN ARRAY(
           SELECT r.data FROM {records} AS r WHERE {window}
           ORDER BY r."{time}" DESC, r."{key}" DESC LIMIT $3
       ) END
FROM {connections} AS c
LEFT JOIN {sync_log} AS s ON s.user_id = c.user_id AND s.data_type = '{data_type}'
LEFT JOIN LATERAL (
    SELECT e.at FROM (SELECT max(received_at) AS at FROM {events}) AS e
    LEFT JOIN {channel} AS ch ON ch.id = {row_id}
    WHERE e.at > $4::timestamptz
      AND (ch.last_refused_at IS NULL OR ch.last_refused_at <= $5::timestamptz)
      AND (ch.suspended_until IS NULL OR ch.suspended_until <= $6::timestamptz)
      AND s.sync_status = 'success' AND c.backfill_pending_since IS NULL
      AND c.status = 'active'
      AND NOT EXISTS (
          SELECT 1 FROM {events} AS o
          WHERE o.whoop_user_id = c.whoop_user_id AND o.status IN ('pending', 'failed')
      )
) AS w ON true
WHERE c.user_id = $1
"""


@cache
def _postgres_sql(data_type: DataType, has_start: bool, has_end: bool) -> str:
    kind = KINDS[data_type]
    window = ["r.user_id = $1"]
    params = iter(range(7, 9))
    if has_start:
        window.append(f'r."{kind.time_column}" >= ${next(params)}')
    if has_end:
        window.append(f'r."{kind.time_column}" < ${next(params)}')
    return _POSTGRES_TEMPLATE.format(
        records=kind.table.name,
        window=" AND ".join(window),
        time=kind.time_column,
        key=kind.key,
        connections=WhoopConnection.__tablename__,
        sync_log=SyncLog.__tablename__,
        data_type=data_type.value,
        events=WebhookEvent.__tablename__,
        channel=ChannelState.__tablename__,
        row_id=ROW_ID,
    )


_STATE = (
    select(
        WhoopConnection.status,
        SyncLog.last_sync_at,
        SyncLog.sync_status,
        WhoopConnection.backfill_pending_since,
        WhoopConnection.whoop_user_id,
    )
    .select_from(WhoopConnection)
    .outerjoin(
        SyncLog,
        and_(
            SyncLog.user_id == WhoopConnection.user_id,
            SyncLog.data_type == bindparam("data_type"),
        ),
    )
    .where(WhoopConnection.user_id == bindparam("user_id"))
)
_CHANNEL = select(
    select(func.max(WebhookEvent.received_at)).scalar_subquery(),
    select(ChannelState.last_refused_at).where(ChannelState.id == ROW_ID).scalar_subquery(),
    select(ChannelState.suspended_until).where(ChannelState.id == ROW_ID).scalar_subquery(),
)
_OPEN = select(WebhookEvent.status, WebhookEvent.received_at).where(
    WebhookEvent.whoop_user_id == bindparam("whoop_user_id"),
    WebhookEvent.status.in_(OPEN_STATUSES),
)


@cache
def _records_stmt(data_type: DataType, has_start: bool, has_end: bool) -> Select[Any]:
    kind = KINDS[data_type]
    table = kind.table
    time_col = table.c[kind.time_column]
    stmt = select(table.c.data).where(table.c.user_id == bindparam("user_id"))
    if has_start:
        stmt = stmt.where(time_col >= bindparam("start", type_=time_col.type))
    if has_end:
        stmt = stmt.where(time_col < bindparam("end", type_=time_col.type))
    return stmt.order_by(time_col.desc(), table.c[kind.key].desc()).limit(bindparam("limit"))


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _state(
    status: str, last_sync_at: datetime | None, sync_status: str | None, channel_at: datetime | None
) -> ReadState:
    synced, by_channel = _utc(last_sync_at), _utc(channel_at)
    confirmed: datetime | None = synced
    by: str | None = None if synced is None else "sync"
    if by_channel is not None and (synced is None or by_channel > synced):
        confirmed, by = by_channel, "webhooks"
    return ReadState(
        connection_status=ConnectionStatus(status),
        last_sync_at=confirmed,
        sync_status=SyncStatus(sync_status or SyncStatus.NEVER_SYNCED),
        confirmed_by=by,
    )


class ReadStateRepository:
    """Connection, sync log and (when fresh) records in one round trip, over a plain connection."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def read(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        window: Window,
        fresh_after: datetime | None,
        rule: LiveRule | None = None,
    ) -> CachedRead | None:
        """None without a WHOOP connection; records only if confirmed after `fresh_after`.

        `rule` is the webhook channel's rule for this type (None: only syncs confirm it).
        """
        if self.connection.dialect.driver == "asyncpg":
            return await self._read_asyncpg(user_id, data_type, window, fresh_after, rule)
        return await self._read_core(user_id, data_type, window, fresh_after, rule)

    async def _read_asyncpg(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        window: Window,
        fresh_after: datetime | None,
        rule: LiveRule | None,
    ) -> CachedRead | None:
        sql = _postgres_sql(data_type, window.start is not None, window.end is not None)
        args = [a for a in (window.start, window.end) if a is not None]
        moments = (
            (None, None, None) if rule is None else (rule.live_after, rule.refused_before, rule.now)
        )
        row = await driver_call(
            self.connection, "fetchrow", sql, user_id, fresh_after, window.limit, *moments, *args
        )
        if row is None:
            return None
        records = row[4]
        state = _state(row[0], row[1], row[2], row[3])
        return CachedRead(state, None if records is None else records)

    async def _read_core(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        window: Window,
        fresh_after: datetime | None,
        rule: LiveRule | None,
    ) -> CachedRead | None:
        found = await self.connection.execute(
            _STATE, {"user_id": user_id, "data_type": data_type.value}
        )
        row = found.first()
        if row is None:
            return None
        status, last_sync_at, sync_status, backfill_due, whoop_user_id = row
        channel_at = None
        if rule is not None and status == ConnectionStatus.ACTIVE.value:
            channel_at = await self._channel_at(
                rule, whoop_user_id, sync_status, backfill_due is not None
            )
        state = _state(status, last_sync_at, sync_status, channel_at)
        if fresh_after is None or state.last_sync_at is None or state.last_sync_at <= fresh_after:
            return CachedRead(state, None)
        params: dict[str, Any] = {"user_id": user_id, "limit": window.limit}
        if window.start is not None:
            params["start"] = window.start
        if window.end is not None:
            params["end"] = window.end
        stmt = _records_stmt(data_type, window.start is not None, window.end is not None)
        texts = (await self.connection.execute(stmt, params)).scalars().all()
        return CachedRead(state, list(texts))

    async def _channel_at(
        self,
        rule: LiveRule,
        whoop_user_id: int,
        sync_status: str | None,
        backfill_due: bool,
    ) -> datetime | None:
        """The channel's confirmation of this user's type, or None (the rule of `freshness.py`)."""
        row = (await self.connection.execute(_CHANNEL)).one()
        newest, refused, suspended = _utc(row[0]), _utc(row[1]), _utc(row[2])
        if newest is None or newest <= rule.live_after:
            return None
        if (refused is not None and refused > rule.refused_before) or (
            suspended is not None and suspended > rule.now
        ):
            return None
        rows = await self.connection.execute(_OPEN, {"whoop_user_id": whoop_user_id})
        events = [OpenEvent(status, _utc(at) or at) for status, at in rows.all()]
        if user_held_back(events, sync_status, backfill_due):
            return None
        return newest
