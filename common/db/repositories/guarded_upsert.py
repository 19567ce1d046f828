"""The guarded upsert, the contract every writer relies on: a record is written only when its
WHOOP `updated_at` is newer than the stored one. An equal `updated_at` writes nothing, an older one
is ignored, so the outcome never depends on the order in which concurrent writers finish. The
guard runs inside the database (INSERT … ON CONFLICT DO UPDATE … WHERE), which makes it atomic on
PostgreSQL and SQLite alike.

A deleted record stays deleted (SPEC §4): every delete leaves a tombstone with the moment of the
deletion, and the same upsert statement lets through only the incoming versions that no tombstone
covers (`WITH incoming AS (SELECT … UNION ALL …) INSERT … SELECT … WHERE NOT EXISTS (tombstone
with deleted_at >= the version's updated_at) ON CONFLICT …`). A fetch that raced the delete, a
collection sync or a job after a purge therefore writes nothing; a version WHOOP updated after the
deletion is written. Retention prunes tombstones older than RETENTION_DAYS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, cast, exists, insert, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import ChangeOutbox
from common.db.repositories.base import Rider
from common.db.repositories.outbox import (
    OUTBOX_COLUMNS,
    UPSERTED,
    ChangeRecorder,
    upserted_changes,
)
from common.db.repositories.record_kinds import RecordKind, WhoopObject
from common.db.types import utcnow
from common.types import DataType, UpsertResult

__all__ = ["BATCH", "GuardedUpsert", "UpsertSummary"]

# Rows per upsert statement: far below SQLite's 500 compound SELECTs and its bound-variable cap.
BATCH = 100
_OUTBOX_TABLE: Table = ChangeOutbox.__table__  # type: ignore[assignment]
# The guarded upsert of each (backend, type, columns, row count), built once (`_guarded_statement`).
_GUARDED: dict[tuple[str, DataType, tuple[str, ...], int], Any] = {}


@dataclass
class UpsertSummary:
    """What one upsert call did, per record key."""

    results: dict[Any, UpsertResult] = field(default_factory=dict)

    def count(self, result: UpsertResult) -> int:
        """How many records ended with this result."""
        return sum(1 for r in self.results.values() if r is result)

    @property
    def written(self) -> int:
        """Records inserted or updated."""
        return len(self.results) - self.count(UpsertResult.UNCHANGED)


class GuardedUpsert:
    """The guarded upsert of one resource's records, in the caller's session
    (`RecordRepository.upsert`)."""

    def __init__(self, session: AsyncSession, kind: RecordKind) -> None:
        self.session, self.kind = session, kind

    def _row(self, user_id: uuid.UUID, obj: WhoopObject, now: datetime) -> dict[str, Any]:
        return {
            **self.kind.columns(obj),
            "user_id": user_id,
            "data": orjson.dumps(obj).decode(),
            "version": 1,
            "synced_at": now,
        }

    async def write(
        self,
        user_id: uuid.UUID,
        objects: Iterable[WhoopObject],
        *,
        outbox: list[dict[str, Any]] | None = None,
        rider: Rider | None = None,
    ) -> UpsertSummary:
        """Write each object unless the stored copy has the same or a newer `updated_at`, or a
        tombstone says the record was deleted at or after the object's `updated_at`.

        Each record written is a change: its outbox row is added to `outbox` for the caller to
        record with the rest of its write (`ChangeRecorder.add`), or recorded here without one.
        `rider`'s write goes out with the last statement (as a CTE on PostgreSQL).
        A writer that may race a delete holds the account's connection first
        (`ConnectionRepository.hold`; deletes hold it exclusively), so that whichever commits
        second sees the other's rows and tombstones.
        """
        now = utcnow()
        newest: dict[Any, dict[str, Any]] = {}
        for obj in objects:
            row = self._row(user_id, obj, now)
            key = row[self.kind.key]
            if key not in newest or newest[key]["updated_at"] < row["updated_at"]:
                newest[key] = row
        summary = UpsertSummary({key: UpsertResult.UNCHANGED for key in newest})
        if not newest:
            if rider is not None:
                await rider.run(self.session)
            return summary
        pending = list(newest.values())
        connection = await self.session.connection()
        if connection.dialect.name == "postgresql":
            await self._upsert_recorded(user_id, pending, summary, now, rider)
            return summary
        for start in range(0, len(pending), BATCH):
            stmt, params = self._guarded_insert(
                connection.dialect.name, pending[start : start + BATCH]
            )
            for key, version in (await connection.execute(stmt, params)).all():
                summary.results[key] = (
                    UpsertResult.INSERTED if version == 1 else UpsertResult.UPDATED
                )
        written = [newest[k] for k, r in summary.results.items() if r is not UpsertResult.UNCHANGED]
        changes = upserted_changes(self.kind.data_type, user_id, self.kind.key, written)
        if outbox is None:
            await ChangeRecorder(self.session).add(changes)
        else:
            outbox.extend(changes)
        if rider is not None:
            await rider.run(self.session)
        return summary

    async def _upsert_recorded(
        self,
        user_id: uuid.UUID,
        pending: list[dict[str, Any]],
        summary: UpsertSummary,
        now: datetime,
        rider: Rider | None,
    ) -> None:
        """PostgreSQL: each batch's guarded upsert and the outbox rows of what it wrote in one
        statement (`_recorded_statement`); the written rows never come back to be sent again.
        The last batch carries `rider`. Through the session, which tells the change feed that
        this transaction recorded changes (`records_changes`)."""
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            carried = rider if start + BATCH >= len(pending) else None
            names = tuple(batch[0])
            shape = (
                f"postgresql+outbox+{carried.name if carried else ''}",
                self.kind.data_type,
                names,
                len(batch),
            )
            stmt = _GUARDED.get(shape)
            if stmt is None:
                stmt = _GUARDED[shape] = self._recorded_statement(names, len(batch), carried)
            params = {f"r{i}_{n}": row[n] for i, row in enumerate(batch) for n in names}
            params |= {"owner": user_id, "change_type": self.kind.data_type.value}
            params["changed_at"] = now
            if carried is not None:
                params |= carried.params
            for key, version in (await self.session.execute(stmt, params)).all():
                summary.results[key] = (
                    UpsertResult.INSERTED if version == 1 else UpsertResult.UPDATED
                )

    def _recorded_statement(self, names: tuple[str, ...], count: int, rider: Rider | None) -> Any:
        """`_guarded_statement` on PostgreSQL with the changes it makes: `WITH written AS (the
        guarded upsert RETURNING …), changes AS (INSERT INTO the outbox SELECT … FROM written)
        SELECT key, version FROM written`, owned by `:owner`; `rider` in a CTE of its own."""
        table, outbox = self.kind.table, _OUTBOX_TABLE
        key = self.kind.key
        written = (
            self._guarded_statement("postgresql", names, count)
            .returning(table.c.whoop_user_id, table.c.updated_at, table.c.data)
            .cte("written")
        )
        changes = (
            insert(outbox)
            .from_select(
                list(OUTBOX_COLUMNS),
                select(
                    bindparam("owner", type_=outbox.c.user_id.type),
                    written.c.whoop_user_id,
                    bindparam("change_type", type_=outbox.c.data_type.type),
                    literal(UPSERTED, outbox.c.action.type),
                    cast(written.c[key], outbox.c.record_id.type),
                    written.c.updated_at,
                    written.c.data,
                    bindparam("changed_at", type_=outbox.c.changed_at.type),
                ),
            )
            .returning(outbox.c.id)
            .cte("changes")
        )
        stmt = select(written.c[key], written.c.version).add_cte(changes)
        if rider is not None:
            stmt = stmt.add_cte(rider.cte())
        return stmt.execution_options(records_changes=True)

    def _guarded_insert(
        self, dialect: str, rows: list[dict[str, Any]]
    ) -> tuple[Any, dict[str, Any]]:
        """The guarded upsert of `rows` and its parameters (`_guarded_statement`)."""
        names = tuple(rows[0])
        shape = (dialect, self.kind.data_type, names, len(rows))
        stmt = _GUARDED.get(shape)
        if stmt is None:
            stmt = _GUARDED[shape] = self._guarded_statement(dialect, names, len(rows))
        params = {f"r{i}_{n}": row[n] for i, row in enumerate(rows) for n in names}
        return stmt, params

    def _guarded_statement(self, dialect: str, names: tuple[str, ...], count: int) -> Any:
        """INSERT … SELECT … WHERE NOT EXISTS (tombstone) ON CONFLICT … WHERE older, for `count`
        rows bound as `r<n>_<column>`; built once per shape and kept (`_GUARDED`).

        The incoming rows are a CTE of one bound SELECT per row joined by UNION ALL, not a VALUES
        list: a VALUES construct has no cache key, so it was compiled afresh on every write; a
        CTE because SQLite has no column list on a VALUES alias. The statement object itself is
        reused: building it and computing its cache key cost more than running it.
        """
        table, tombstones = self.kind.table, self.kind.tombstones
        selects = [
            select(*(bindparam(f"r{i}_{n}", type_=table.c[n].type).label(n) for n in names))
            for i in range(count)
        ]
        incoming = (selects[0] if count == 1 else union_all(*selects)).cte("incoming")
        deleted = exists().where(
            tombstones.c[self.kind.tombstone_key] == incoming.c[self.kind.tombstone_key],
            tombstones.c.deleted_at >= incoming.c.updated_at,
        )
        picked: list[Any] = list(incoming.c)
        if dialect == "postgresql":
            # A column of NULLs alone (a cycle still open has no `end`) is text to PostgreSQL.
            picked = [cast(incoming.c[n], table.c[n].type) for n in names]
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        stmt = insert.from_select(list(names), select(*picked).where(~deleted))
        excluded = stmt.excluded
        updatable = [c.name for c in table.columns if c.name not in (self.kind.key, "version")]
        return stmt.on_conflict_do_update(
            index_elements=[self.kind.key],
            set_={**{name: excluded[name] for name in updatable}, "version": table.c.version + 1},
            where=table.c.updated_at < excluded.updated_at,
        ).returning(table.c[self.kind.key], table.c.version)
