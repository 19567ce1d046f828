"""The sync log: the latest state per (user, type), and the history of every attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import SyncAttempt, SyncLog
from common.db.repositories.base import Rider
from common.db.types import utcnow
from common.types import DataType, SyncStatus, Trigger


@dataclass(frozen=True)
class Attempt:
    """One finished sync attempt, as the sync service reports it."""

    user_id: uuid.UUID
    data_type: DataType
    trigger: Trigger
    status: SyncStatus
    records: int
    started_at: datetime
    duration_ms: int
    error: str | None = None
    # False for a fetch of less than the newest records: it moves `last_fetch_at` only (SPEC 3.1).
    confirms: bool = True


_ATTEMPT_INSERT = insert(SyncAttempt)
_LATEST: dict[str, Any] = {}
_ATTEMPT_COLUMNS = (
    "user_id",
    "data_type",
    "trigger",
    "outcome",
    "records",
    "error",
    "duration_ms",
    "started_at",
)
_STATE_COLUMNS = (
    "user_id",
    "data_type",
    "last_sync_at",
    "last_fetch_at",
    "last_attempt_at",
    "sync_status",
    "records_synced",
    "error_message",
    "created_at",
    "updated_at",
)
# PostgreSQL's history and latest states in one statement, by (attempts, states, rider) shape.
_BOTH: dict[tuple[int, int, str | None], Any] = {}


def _on_latest_conflict(stmt: Any) -> Any:
    """An insert into the latest states made an upsert: a failure keeps `last_sync_at` and
    `last_fetch_at`, everything else is the attempt's."""
    table: Any = SyncLog.__table__
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["user_id", "data_type"],
        set_={
            "last_sync_at": func.coalesce(excluded.last_sync_at, table.c.last_sync_at),
            "last_fetch_at": func.coalesce(excluded.last_fetch_at, table.c.last_fetch_at),
            "last_attempt_at": excluded.last_attempt_at,
            "sync_status": excluded.sync_status,
            "records_synced": excluded.records_synced,
            "error_message": excluded.error_message,
            "updated_at": excluded.updated_at,
        },
    )


def _latest_upsert(dialect: str) -> Any:
    """The latest-state upsert of one backend, built once and run with one parameter set per
    (user, type): one compiled form whatever the count (a multi-row VALUES is compiled anew for
    each count)."""
    if dialect not in _LATEST:
        table: Any = SyncLog.__table__
        _LATEST[dialect] = _on_latest_conflict(
            (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        )
    return _LATEST[dialect]


def _bound_rows(table: Any, prefix: str, columns: tuple[str, ...], count: int) -> Any:
    """`count` rows bound as `<prefix><n>_<column>`, as one SELECT per row joined by UNION ALL:
    unlike a multi-row VALUES, SQLAlchemy caches its compiled form."""
    rows = [
        select(*(bindparam(f"{prefix}{i}_{c}", type_=table.c[c].type).label(c) for c in columns))
        for i in range(count)
    ]
    return rows[0] if count == 1 else union_all(*rows)


def _both_statement(attempts: int, states: int, rider: Rider | None) -> Any:
    """PostgreSQL: `attempts` history rows (`a<n>_<column>`) added in a CTE of the upsert of
    `states` latest states (`s<n>_<column>`), and the rider's write in another; one round trip,
    built once per shape and kept."""
    shape = (attempts, states, None if rider is None else rider.name)
    if shape not in _BOTH:
        history_table: Any = SyncAttempt.__table__
        latest_table: Any = SyncLog.__table__
        history = (
            insert(history_table)
            .from_select(
                _ATTEMPT_COLUMNS, _bound_rows(history_table, "a", _ATTEMPT_COLUMNS, attempts)
            )
            .returning(history_table.c.id)
            .cte("history")
        )
        latest = postgresql.insert(latest_table).from_select(
            _STATE_COLUMNS, _bound_rows(latest_table, "s", _STATE_COLUMNS, states)
        )
        stmt = _on_latest_conflict(latest).add_cte(history)
        if rider is not None:
            stmt = stmt.add_cte(rider.cte())
        _BOTH[shape] = stmt
    return _BOTH[shape]


def _rows(attempts: Sequence[Attempt]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The history rows of `attempts` and the latest state each (user, type) is left in."""
    now = utcnow()
    history = [
        {
            "user_id": a.user_id,
            "data_type": a.data_type.value,
            "trigger": a.trigger.value,
            "outcome": a.status.value,
            "records": a.records,
            "error": a.error,
            "duration_ms": a.duration_ms,
            "started_at": a.started_at,
        }
        for a in attempts
    ]
    states: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for a in attempts:
        success = a.status is SyncStatus.SUCCESS
        key = (a.user_id, a.data_type.value)
        before = states.get(key, {})
        states[key] = {
            "user_id": a.user_id,
            "data_type": a.data_type.value,
            "last_sync_at": (a.started_at if success and a.confirms else None)
            or before.get("last_sync_at"),
            "last_fetch_at": (a.started_at if success else None) or before.get("last_fetch_at"),
            "last_attempt_at": a.started_at,
            "sync_status": a.status.value,
            "records_synced": a.records,
            "error_message": a.error,
            "created_at": now,
            "updated_at": now,
        }
    return history, list(states.values())


class SyncLogRepository:
    """All SQL of `whoop_sync_log` and `whoop_sync_attempt`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, attempt: Attempt) -> None:
        """Add the attempt to the history and make it the latest state of its user and type."""
        await self.record_all([attempt])

    async def record_all(self, attempts: Sequence[Attempt], *, rider: Rider | None = None) -> None:
        """Add attempts to the history and make each the latest state of its user and type, in
        the order given, with `rider`'s write: one statement on PostgreSQL, three on SQLite.

        A failure keeps the previous `last_sync_at`, so stale data never looks fresh; a success
        that does not confirm (a narrow fetch) moves only `last_fetch_at`.
        """
        if not attempts:
            if rider is not None:
                await rider.run(self.session)
            return
        recording = self.recording(attempts, rider=rider)
        if recording is not None:  # one round trip for all
            await recording.run(self.session)
            return
        history, latest = _rows(attempts)
        connection = await self.session.connection()
        await connection.execute(_ATTEMPT_INSERT, history)
        await connection.execute(_latest_upsert(connection.dialect.name), latest)
        if rider is not None:
            await rider.run(self.session)

    def recording(self, attempts: Sequence[Attempt], *, rider: Rider | None = None) -> Rider | None:
        """`record_all` of `attempts` (and `rider`) as one statement that may itself ride with a
        write of the same transaction (the event's upsert); None on SQLite or with no attempts."""
        if not attempts or self.session.get_bind().dialect.name != "postgresql":
            return None
        history, latest = _rows(attempts)
        params = {f"a{i}_{c}": v for i, row in enumerate(history) for c, v in row.items()}
        params |= {f"s{i}_{c}": v for i, row in enumerate(latest) for c, v in row.items()}
        if rider is not None:
            params |= rider.params
        stmt = _both_statement(len(history), len(latest), rider)
        name = f"sync_log_{len(history)}_{len(latest)}_{rider.name if rider else ''}"
        return Rider(name, stmt, params)

    async def get(self, user_id: uuid.UUID, data_type: DataType) -> SyncLog | None:
        """The latest state of one user and type, or None when never synced."""
        return await self.session.scalar(
            select(SyncLog)
            .where(SyncLog.user_id == user_id, SyncLog.data_type == data_type.value)
            .execution_options(populate_existing=True)
        )

    async def for_user(self, user_id: uuid.UUID) -> dict[DataType, SyncLog]:
        """The latest state of every type the user has synced."""
        rows = await self.session.scalars(
            select(SyncLog)
            .where(SyncLog.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        return {DataType(row.data_type): row for row in rows}

    async def history(
        self, user_id: uuid.UUID, data_type: DataType | None = None, limit: int = 50
    ) -> Sequence[SyncAttempt]:
        """Past attempts of a user, newest first."""
        stmt = select(SyncAttempt).where(SyncAttempt.user_id == user_id)
        if data_type is not None:
            stmt = stmt.where(SyncAttempt.data_type == data_type.value)
        stmt = stmt.order_by(SyncAttempt.started_at.desc(), SyncAttempt.id.desc()).limit(limit)
        return (await self.session.scalars(stmt)).all()

    async def delete_user(self, user_id: uuid.UUID) -> None:
        """Forget the sync state of a user (purge)."""
        await self.session.execute(delete(SyncLog).where(SyncLog.user_id == user_id))
        await self.session.execute(delete(SyncAttempt).where(SyncAttempt.user_id == user_id))

    async def move_user(self, from_user: uuid.UUID, to_user: uuid.UUID) -> None:
        """Give `from_user`'s sync state and history to `to_user` (a WHOOP account moved between
        app users), replacing whatever state `to_user` had."""
        await self.session.execute(delete(SyncLog).where(SyncLog.user_id == to_user))
        for model in (SyncLog, SyncAttempt):
            await self.session.execute(
                update(model).where(model.user_id == from_user).values(user_id=to_user)
            )
