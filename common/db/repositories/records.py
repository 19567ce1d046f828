"""One generic repository for the four cached WHOOP resources.

The guarded upsert is the contract every writer relies on: a record is written only when its WHOOP
`updated_at` is newer than the stored one. An equal `updated_at` writes nothing, an older one is
ignored, so the outcome never depends on the order in which concurrent writers finish. The guard runs
inside the database (INSERT … ON CONFLICT DO UPDATE … WHERE), which makes it atomic on PostgreSQL
and SQLite alike.

A deleted record stays deleted (SPEC §4): every delete leaves a tombstone with the moment of the
deletion, and the same upsert statement lets through only the incoming versions that no tombstone
covers (`WITH incoming AS (SELECT … UNION ALL …) INSERT … SELECT … WHERE NOT EXISTS (tombstone
with deleted_at >= the version's updated_at) ON CONFLICT …`). A fetch that raced the delete, a
collection sync or a job after a purge therefore writes nothing; a version WHOOP updated after the
deletion is written. Retention prunes tombstones older than RETENTION_DAYS.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import (
    ChangeOutbox,
    Cycle,
    CycleTombstone,
    Recovery,
    RecoveryTombstone,
    Sleep,
    SleepTombstone,
    Workout,
    WorkoutTombstone,
)
from common.db.models.records import RecordMixin
from common.db.models.tombstones import TombstoneMixin
from common.db.repositories.base import Rider, dialect_insert
from common.db.repositories.changes import (
    OUTBOX_COLUMNS,
    UPSERTED,
    ChangeRecorder,
    upserted_changes,
)
from common.db.types import utcnow
from common.types import DataType, UpsertResult

WhoopObject = Mapping[str, Any]
# Rows per upsert statement: far below SQLite's 500 compound SELECTs and its bound-variable cap.
BATCH = 100
_OUTBOX_TABLE: Table = ChangeOutbox.__table__  # type: ignore[assignment]
# The guarded upsert of each (backend, type, columns, row count), built once (`_guarded_statement`).
_GUARDED: dict[tuple[str, DataType, tuple[str, ...], int], Any] = {}


def parse_time(value: str | None) -> datetime | None:
    """A WHOOP timestamp (ISO 8601, `Z` or offset) as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value)


def _common(obj: WhoopObject) -> dict[str, Any]:
    return {
        "whoop_user_id": int(obj["user_id"]),
        "created_at": parse_time(obj["created_at"]),
        "updated_at": parse_time(obj["updated_at"]),
        "score_state": obj["score_state"],
    }


def _timed(obj: WhoopObject) -> dict[str, Any]:
    return {**_common(obj), "start": parse_time(obj["start"]), "end": parse_time(obj.get("end"))}


@dataclass(frozen=True)
class RecordKind:
    """How one WHOOP resource maps onto its table."""

    data_type: DataType
    model: type[RecordMixin]
    key: str
    time_column: str
    columns: Callable[[WhoopObject], dict[str, Any]]
    key_of: Callable[[WhoopObject], Any] = field(repr=False)
    tombstone: type[TombstoneMixin] = field(repr=False, default=CycleTombstone)
    # The record's column its tombstone is keyed by (a recovery's sleep, else the key itself).
    tombstone_key: str = "id"

    @property
    def table(self) -> Table:
        """The SQLAlchemy table behind the kind."""
        return self.model.__table__  # type: ignore[attr-defined,no-any-return]

    @property
    def tombstones(self) -> Table:
        """The table of this kind's deleted records."""
        return self.tombstone.__table__  # type: ignore[attr-defined,no-any-return]


KINDS: dict[DataType, RecordKind] = {
    DataType.CYCLE: RecordKind(
        DataType.CYCLE,
        Cycle,
        "id",
        "start",
        columns=lambda o: {"id": int(o["id"]), **_timed(o)},
        key_of=lambda o: int(o["id"]),
        tombstone=CycleTombstone,
    ),
    DataType.SLEEP: RecordKind(
        DataType.SLEEP,
        Sleep,
        "id",
        "start",
        columns=lambda o: {
            "id": uuid.UUID(o["id"]),
            "cycle_id": int(o["cycle_id"]),
            "nap": bool(o.get("nap", False)),
            **_timed(o),
        },
        key_of=lambda o: uuid.UUID(o["id"]),
        tombstone=SleepTombstone,
    ),
    DataType.WORKOUT: RecordKind(
        DataType.WORKOUT,
        Workout,
        "id",
        "start",
        columns=lambda o: {
            "id": uuid.UUID(o["id"]),
            "sport_name": o.get("sport_name"),
            **_timed(o),
        },
        key_of=lambda o: uuid.UUID(o["id"]),
        tombstone=WorkoutTombstone,
    ),
    DataType.RECOVERY: RecordKind(
        DataType.RECOVERY,
        Recovery,
        "cycle_id",
        "created_at",
        columns=lambda o: {
            "cycle_id": int(o["cycle_id"]),
            "sleep_id": uuid.UUID(o["sleep_id"]),
            **_common(o),
        },
        key_of=lambda o: int(o["cycle_id"]),
        tombstone=RecoveryTombstone,
        tombstone_key="sleep_id",
    ),
}


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


class RecordRepository:
    """Reads and writes of one WHOOP resource; all SQL for records lives here."""

    def __init__(self, session: AsyncSession, data_type: DataType) -> None:
        self.session = session
        self.kind = KINDS[data_type]

    def _row(self, user_id: uuid.UUID, obj: WhoopObject, now: datetime) -> dict[str, Any]:
        return {
            **self.kind.columns(obj),
            "user_id": user_id,
            "data": orjson.dumps(obj).decode(),
            "version": 1,
            "synced_at": now,
        }

    async def upsert(
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

    async def _bury(self, user_id: uuid.UUID, keys: Iterable[Any], at: datetime) -> None:
        """Leave (or move forward) a tombstone for each key, in one statement."""
        rows = [
            {self.kind.tombstone_key: key, "user_id": user_id, "deleted_at": at}
            for key in dict.fromkeys(keys)
        ]
        if not rows:
            return
        tombstones = self.kind.tombstones
        stmt = dialect_insert(self.session, tombstones).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[self.kind.tombstone_key],
            set_={"deleted_at": stmt.excluded.deleted_at, "user_id": stmt.excluded.user_id},
            where=tombstones.c.deleted_at < stmt.excluded.deleted_at,
        )
        await self.session.execute(stmt)

    async def _remove(
        self, user_id: uuid.UUID, at: datetime, *clauses: ColumnElement[bool]
    ) -> list[Any]:
        """Delete this user's matching rows, recording each as a change deleted at `at` (the
        tombstone's time); their tombstone keys."""
        table = self.kind.table
        rows = (
            await self.session.execute(
                delete(table)
                .where(*clauses, table.c.user_id == user_id)
                .returning(
                    table.c[self.kind.key], table.c[self.kind.tombstone_key], table.c.whoop_user_id
                )
            )
        ).all()
        await ChangeRecorder(self.session).deleted(
            self.kind.data_type, user_id, [(key, whoop_user) for key, _, whoop_user in rows], at
        )
        return [buried for _, buried, _ in rows]

    async def delete(self, user_id: uuid.UUID, key: Any, *, bury_absent: bool = True) -> int:
        """Remove one record of this user and keep its tombstone; how many rows went."""
        return await self.delete_where(user_id, self.kind.key, key, bury_absent=bury_absent)

    async def delete_where(
        self, user_id: uuid.UUID, column: str, value: Any, *, bury_absent: bool = True
    ) -> int:
        """Remove this user's records whose `column` equals `value` (a sleep's recovery), leaving
        tombstones. With `bury_absent` (a `*.deleted` event) one is left for `value` itself when it
        is what tombstones are keyed by, so that a version fetched before the deletion is refused
        even if it was not cached yet; without it (a 404 at WHOOP, which may only mean "not yet")
        only records that were cached get one."""
        at = utcnow()
        keys = await self._remove(user_id, at, self.kind.table.c[column] == value)
        removed = len(keys)
        if bury_absent and column == self.kind.tombstone_key:
            keys.append(value)
        await self._bury(user_id, keys, at)
        return removed

    async def delete_all(self, user_id: uuid.UUID) -> int:
        """Remove every record of this user (purge), leaving a tombstone for each."""
        now = utcnow()
        keys = await self._remove(user_id, now)
        for start in range(0, len(keys), 1000):
            await self._bury(user_id, keys[start : start + 1000], now)
        return len(keys)

    async def remove_account(self, user_id: uuid.UUID, whoop_user_id: int) -> int:
        """Remove the user's records of one WHOOP account without tombstones (the user switched
        to another account: a later link of this one backfills it afresh); each removal is a
        `deleted` change. How many went."""
        table = self.kind.table
        return len(await self._remove(user_id, utcnow(), table.c.whoop_user_id == whoop_user_id))

    async def forget_deletions(self, user_id: uuid.UUID) -> int:
        """Drop this user's tombstones (a user who links WHOOP again after a purge gets the
        history back); how many went."""
        tombstones = self.kind.tombstones
        result = await self.session.execute(
            delete(tombstones).where(tombstones.c.user_id == user_id)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def reassign(self, whoop_user_id: int, user_id: uuid.UUID) -> int:
        """Hand every record of a WHOOP account to the app user who now holds it (an account
        move); returns how many rows changed hands. The feed says so to both users: each record
        is deleted for its old holder and upserted for the new one."""
        table, key = self.kind.table, self.kind.key
        moving = (
            await self.session.execute(
                select(table.c[key], table.c.user_id, table.c.updated_at, table.c.data).where(
                    table.c.whoop_user_id == whoop_user_id, table.c.user_id != user_id
                )
            )
        ).all()
        if not moving:
            return 0
        await self.session.execute(
            update(table)
            .where(table.c[key].in_([row[0] for row in moving]))
            .values(user_id=user_id)
        )
        recorder = ChangeRecorder(self.session)
        for old_user in {row[1] for row in moving}:
            await recorder.deleted(
                self.kind.data_type,
                old_user,
                [(row[0], whoop_user_id) for row in moving if row[1] == old_user],
            )
        await recorder.upserted(
            self.kind.data_type,
            user_id,
            key,
            [
                {key: row[0], "whoop_user_id": whoop_user_id, "updated_at": row[2], "data": row[3]}
                for row in moving
            ],
        )
        return len(moving)

    def _window(
        self, user_id: uuid.UUID, start: datetime | None, end: datetime | None
    ) -> list[ColumnElement[bool]]:
        table = self.kind.table
        time_col = table.c[self.kind.time_column]
        clauses: list[ColumnElement[bool]] = [table.c.user_id == user_id]
        if start is not None:
            clauses.append(time_col >= start)
        if end is not None:
            clauses.append(time_col < end)
        return clauses

    async def read_json(
        self,
        user_id: uuid.UUID,
        *,
        limit: int = 30,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[str]:
        """The stored WHOOP objects as JSON text, newest first by the resource's time."""
        table = self.kind.table
        stmt = (
            select(table.c.data)
            .where(*self._window(user_id, start, end))
            .order_by(table.c[self.kind.time_column].desc(), table.c[self.kind.key].desc())
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def read(
        self,
        user_id: uuid.UUID,
        *,
        limit: int = 30,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The stored WHOOP objects, decoded, newest first."""
        return [
            orjson.loads(text)
            for text in await self.read_json(user_id, limit=limit, start=start, end=end)
        ]

    async def get(self, key: Any) -> dict[str, Any] | None:
        """One stored WHOOP object by its key, or None."""
        table = self.kind.table
        text = await self.session.scalar(select(table.c.data).where(table.c[self.kind.key] == key))
        return None if text is None else dict(orjson.loads(text))

    async def keys_in_state(
        self,
        user_id: uuid.UUID,
        score_state: str,
        limit: int = 100,
        *,
        synced_before: datetime | None = None,
    ) -> list[Any]:
        """Keys of this user's records still in a score state (e.g. PENDING_SCORE), newest first;
        with `synced_before`, only those last written before that moment."""
        table = self.kind.table
        clauses = [table.c.user_id == user_id, table.c.score_state == score_state]
        if synced_before is not None:
            clauses.append(table.c.synced_at < synced_before)
        stmt = (
            select(table.c[self.kind.key])
            .where(*clauses)
            .order_by(table.c[self.kind.time_column].desc())
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def fetched_since(
        self, user_id: uuid.UUID, key: Any, moment: datetime
    ) -> dict[str, Any] | None:
        """The stored object when WHOOP was last asked for it at or after `moment`, else None."""
        table = self.kind.table
        text = await self.session.scalar(
            select(table.c.data).where(
                table.c.user_id == user_id,
                table.c[self.kind.key] == key,
                table.c.synced_at >= moment,
            )
        )
        return None if text is None else dict(orjson.loads(text))

    async def covering(self, user_id: uuid.UUID, moment: datetime) -> tuple[Any, datetime] | None:
        """Key and last fetch of this user's newest record begun at or before `moment`."""
        table = self.kind.table
        time_col = table.c[self.kind.time_column]
        row = (
            await self.session.execute(
                select(table.c[self.kind.key], table.c.synced_at)
                .where(table.c.user_id == user_id, time_col <= moment)
                .order_by(time_col.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def users_in_state(self, score_state: str, synced_before: datetime) -> list[uuid.UUID]:
        """Users with a record in this score state last written before that moment."""
        table = self.kind.table
        stmt = (
            select(table.c.user_id)
            .where(table.c.score_state == score_state, table.c.synced_at < synced_before)
            .distinct()
        )
        return list((await self.session.scalars(stmt)).all())

    async def mark_checked(self, user_id: uuid.UUID, keys: Iterable[Any], at: datetime) -> None:
        """Note that WHOOP was asked for these records at `at` (`synced_at`), changed or not."""
        table = self.kind.table
        keys = list(keys)
        if keys:
            await self.session.execute(
                update(table)
                .where(table.c.user_id == user_id, table.c[self.kind.key].in_(keys))
                .values(synced_at=at)
            )

    async def count(self, user_id: uuid.UUID) -> int:
        """How many records of this resource the user has."""
        table = self.kind.table
        return int(
            await self.session.scalar(select(func.count()).where(table.c.user_id == user_id)) or 0
        )


def record_key(data_type: DataType, obj: WhoopObject) -> Any:
    """The primary key of a WHOOP object in its table."""
    return KINDS[data_type].key_of(obj)
