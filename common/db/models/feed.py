"""The change feed: an unnumbered outbox that writers fill in their own transaction, the numbered
changes a single drainer moves it into, and the pushes of those changes to the app's backend."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow

_ID = BigInteger().with_variant(Integer, "sqlite")


class ChangeOutbox(Base):
    """A change written with the record, not yet numbered (the drainer numbers it)."""

    __tablename__ = "whoop_change_outbox"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column()
    whoop_user_id: Mapped[int] = mapped_column(BigInteger)
    # Null, with `record_id`, for a lifecycle change (`action` names it: `user.erased` …).
    data_type: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The record as the write left it (compact JSON text); None for a delete.
    data: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Change(Base):
    """A change in the feed, numbered in commit order per deployment (`seq` is the cursor)."""

    __tablename__ = "whoop_change"
    __table_args__ = (
        Index("ix_whoop_change_user_seq", "user_id", "seq"),
        Index("ix_whoop_change_changed_at", "changed_at"),
        # Never reuse a number, even after retention has emptied the table.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(_ID, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column()
    whoop_user_id: Mapped[int] = mapped_column(BigInteger)
    # Null, with `record_id`, for a lifecycle change (`action` names it: `user.erased` …).
    data_type: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeHorizon(Base):
    """One row: the highest change number retention has deleted (older cursors have expired)."""

    __tablename__ = "whoop_change_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)


class AppDelivery(Base):
    """The push of one change to the app's backend: pending until a 2xx, failed after a day."""

    __tablename__ = "whoop_app_delivery"
    __table_args__ = (
        Index("ix_whoop_app_delivery_user_status_seq", "user_id", "status", "change_seq"),
        Index("ix_whoop_app_delivery_status_next", "status", "next_attempt_at"),
    )

    change_seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    user_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class AppDeliveryAttempt(Base):
    """One POST of a change to the app's backend: outcome, answer code and duration."""

    __tablename__ = "whoop_app_delivery_attempt"
    __table_args__ = (Index("ix_whoop_app_delivery_attempt_seq", "change_seq"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    change_seq: Mapped[int] = mapped_column(_ID)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    response_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
