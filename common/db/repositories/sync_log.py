"""The sync log: the latest state per (user, type), and the history of every attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import SyncAttempt, SyncLog
from common.db.repositories.base import dialect_insert
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


class SyncLogRepository:
    """All SQL of `whoop_sync_log` and `whoop_sync_attempt`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, attempt: Attempt) -> None:
        """Add the attempt to the history and make it the latest state of its user and type.

        A failure keeps the previous `last_sync_at`, so stale data never looks fresh; a success
        that does not confirm (a narrow fetch) moves only `last_fetch_at`.
        """
        now = utcnow()
        self.session.add(
            SyncAttempt(
                user_id=attempt.user_id,
                data_type=attempt.data_type.value,
                trigger=attempt.trigger.value,
                outcome=attempt.status.value,
                records=attempt.records,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                started_at=attempt.started_at,
            )
        )
        success = attempt.status is SyncStatus.SUCCESS
        values = {
            "user_id": attempt.user_id,
            "data_type": attempt.data_type.value,
            "last_sync_at": attempt.started_at if success and attempt.confirms else None,
            "last_fetch_at": attempt.started_at if success else None,
            "last_attempt_at": attempt.started_at,
            "sync_status": attempt.status.value,
            "records_synced": attempt.records,
            "error_message": attempt.error,
            "created_at": now,
            "updated_at": now,
        }
        table = SyncLog.__table__
        stmt = dialect_insert(self.session, table).values(values)
        changes = {
            "last_attempt_at": stmt.excluded.last_attempt_at,
            "sync_status": stmt.excluded.sync_status,
            "records_synced": stmt.excluded.records_synced,
            "error_message": stmt.excluded.error_message,
            "updated_at": stmt.excluded.updated_at,
        }
        if success:
            changes["last_fetch_at"] = stmt.excluded.last_fetch_at
        if success and attempt.confirms:
            changes["last_sync_at"] = stmt.excluded.last_sync_at
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["user_id", "data_type"], set_=changes)
        )

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
