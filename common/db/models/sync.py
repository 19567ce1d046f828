"""The sync log (latest state per user and type) and its history of attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow


class SyncLog(Base):
    """The guide's `whoop_sync_log`: one row per (user_id, data_type).

    `last_sync_at` is the last *successful* sync; `sync_status` the outcome of the latest attempt.
    """

    __tablename__ = "whoop_sync_log"
    __table_args__ = (UniqueConstraint("user_id", "data_type"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[uuid.UUID]
    data_type: Mapped[str] = mapped_column(String(16))
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last successful fetch of any shape (a narrow read too); only a sync of the newest
    # records moves `last_sync_at` (SPEC 3.1).
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sync_status: Mapped[str] = mapped_column(String(32))
    records_synced: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncAttempt(Base):
    """One row per sync attempt: type, trigger, outcome, records, error, duration."""

    __tablename__ = "whoop_sync_attempt"
    __table_args__ = (
        Index("ix_whoop_sync_attempt_user_type_started", "user_id", "data_type", "started_at"),
        # Retention deletes the oldest attempts first, in batches.
        Index("ix_whoop_sync_attempt_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[uuid.UUID]
    data_type: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    records: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
