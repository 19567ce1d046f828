"""The read API's hot path: a user's connection, one type's sync state and, when the last sync is
recent enough, the records' JSON texts, all in one statement.

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

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db.models import SyncLog, WhoopConnection
from common.db.repositories.records import KINDS
from common.db.resilient import driver_call
from common.types import ConnectionStatus, DataType, SyncStatus


@dataclass(frozen=True)
class ReadState:
    """What a read needs to choose between cache and WHOOP."""

    connection_status: ConnectionStatus
    last_sync_at: datetime | None
    sync_status: SyncStatus


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
# records), $3 limit, then start and end when the window has them.
_POSTGRES_TEMPLATE = """
SELECT c.status, s.last_sync_at, s.sync_status,
       CASE WHEN s.last_sync_at > $2 THEN ARRAY(
           SELECT r.data FROM {records} AS r WHERE {window}
           ORDER BY r."{time}" DESC, r."{key}" DESC LIMIT $3
       ) END
FROM {connections} AS c
LEFT JOIN {sync_log} AS s ON s.user_id = c.user_id AND s.data_type = '{data_type}'
WHERE c.user_id = $1
"""


@cache
def _postgres_sql(data_type: DataType, has_start: bool, has_end: bool) -> str:
    kind = KINDS[data_type]
    window = ["r.user_id = $1"]
    params = iter(range(4, 6))
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
    )


_STATE = (
    select(WhoopConnection.status, SyncLog.last_sync_at, SyncLog.sync_status)
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


def _state(status: str, last_sync_at: datetime | None, sync_status: str | None) -> ReadState:
    return ReadState(
        connection_status=ConnectionStatus(status),
        last_sync_at=None if last_sync_at is None else last_sync_at.astimezone(UTC),
        sync_status=SyncStatus(sync_status or SyncStatus.NEVER_SYNCED),
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
    ) -> CachedRead | None:
        """None without a WHOOP connection; records only if synced after `fresh_after`."""
        if self.connection.dialect.driver == "asyncpg":
            return await self._read_asyncpg(user_id, data_type, window, fresh_after)
        return await self._read_core(user_id, data_type, window, fresh_after)

    async def _read_asyncpg(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        window: Window,
        fresh_after: datetime | None,
    ) -> CachedRead | None:
        sql = _postgres_sql(data_type, window.start is not None, window.end is not None)
        args = [a for a in (window.start, window.end) if a is not None]
        row = await driver_call(
            self.connection, "fetchrow", sql, user_id, fresh_after, window.limit, *args
        )
        if row is None:
            return None
        records = row[3]
        return CachedRead(_state(row[0], row[1], row[2]), None if records is None else records)

    async def _read_core(
        self,
        user_id: uuid.UUID,
        data_type: DataType,
        window: Window,
        fresh_after: datetime | None,
    ) -> CachedRead | None:
        found = await self.connection.execute(
            _STATE, {"user_id": user_id, "data_type": data_type.value}
        )
        row = found.first()
        if row is None:
            return None
        state = _state(*row)
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
