"""Tombstones: the records that were deleted, and when (SPEC §4: a deleted record stays deleted).

One table per resource, keyed like the record's table so that the guarded upsert can look its
tombstone up in the same statement. A recovery's tombstone is keyed by its sleep: that is what
`recovery.deleted` and `sleep.deleted` name.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime


class TombstoneMixin:
    """Whose record it was and when it was deleted (a version not newer than this is refused)."""

    user_id: Mapped[uuid.UUID] = mapped_column()
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:
        # Retention prunes the oldest first.
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (Index(f"ix_{name}_deleted_at", "deleted_at"),)


class CycleTombstone(TombstoneMixin, Base):
    """A deleted cycle."""

    __tablename__ = "whoop_cycle_tombstone"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class SleepTombstone(TombstoneMixin, Base):
    """A deleted sleep."""

    __tablename__ = "whoop_sleep_tombstone"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class WorkoutTombstone(TombstoneMixin, Base):
    """A deleted workout."""

    __tablename__ = "whoop_workout_tombstone"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class RecoveryTombstone(TombstoneMixin, Base):
    """A deleted recovery, by the sleep it belonged to."""

    __tablename__ = "whoop_recovery_tombstone"

    sleep_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
