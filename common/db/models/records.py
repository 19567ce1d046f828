"""The four cached WHOOP resources: the object kept whole as JSON text, plus the columns
that queries and ordering need."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow


class RecordMixin:
    """Columns every cached WHOOP record has."""

    user_id: Mapped[uuid.UUID] = mapped_column()
    whoop_user_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    score_state: Mapped[str] = mapped_column(String(16))
    # The WHOOP object exactly as WHOOP returned it, compact JSON text, spliced into answers as is.
    data: Mapped[str] = mapped_column(Text)
    # 1 on insert, +1 on each accepted update: how the upsert tells inserted from updated.
    version: Mapped[int] = mapped_column(Integer, default=1)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TimedMixin:
    """Records whose time is their `start` (cycle, sleep, workout)."""

    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:
        return (Index(f"ix_{cls.__tablename__}_user_start", "user_id", "start"),)  # type: ignore[attr-defined]


class Cycle(TimedMixin, RecordMixin, Base):
    """A physiological cycle (bigint id)."""

    __tablename__ = "whoop_cycle"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Sleep(TimedMixin, RecordMixin, Base):
    """A sleep or nap (UUID id) and the cycle it belongs to."""

    __tablename__ = "whoop_sleep"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(BigInteger, index=True)
    nap: Mapped[bool] = mapped_column(Boolean, default=False)


class Workout(TimedMixin, RecordMixin, Base):
    """A workout (UUID id)."""

    __tablename__ = "whoop_workout"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sport_name: Mapped[str | None] = mapped_column(String(64))


class Recovery(RecordMixin, Base):
    """A recovery, keyed by its cycle; its time is `created_at`."""

    __tablename__ = "whoop_recovery"
    __table_args__ = (Index("ix_whoop_recovery_user_created", "user_id", "created_at"),)

    cycle_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sleep_id: Mapped[uuid.UUID] = mapped_column(unique=True)
