"""One generic repository for the four cached WHOOP resources: their writes (the guarded upsert,
`guarded_upsert`; deletes that leave tombstones, moves between users) and their reads. How each
resource maps onto its table is `record_kinds`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories.base import Rider, dialect_insert
from common.db.repositories.guarded_upsert import GuardedUpsert, UpsertSummary
from common.db.repositories.outbox import ChangeRecorder
from common.db.repositories.record_kinds import KINDS, WhoopObject
from common.db.types import utcnow
from common.types import DataType

__all__ = ["RecordRepository"]


class RecordRepository:
    """Reads and writes of one WHOOP resource (the upsert's SQL is `guarded_upsert`'s)."""

    def __init__(self, session: AsyncSession, data_type: DataType) -> None:
        self.session = session
        self.kind = KINDS[data_type]

    async def upsert(
        self,
        user_id: uuid.UUID,
        objects: Iterable[WhoopObject],
        *,
        outbox: list[dict[str, Any]] | None = None,
        rider: Rider | None = None,
    ) -> UpsertSummary:
        """Write each object unless the stored copy has the same or a newer `updated_at`, or a
        tombstone says the record was deleted at or after it (`GuardedUpsert.write`)."""
        return await GuardedUpsert(self.session, self.kind).write(
            user_id, objects, outbox=outbox, rider=rider
        )

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
