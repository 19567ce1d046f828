"""The webhook inbox: every verified WHOOP event, recorded before it is acknowledged."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, column
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow

# The statuses of an open event (the literals of the partial index's predicate).
_OPEN = ("pending", "failed")


class WebhookEvent(Base):
    """One WHOOP webhook delivery, unique by `trace_id`."""

    __tablename__ = "whoop_webhook_event"
    __table_args__ = (
        Index("ix_whoop_webhook_event_status_received", "status", "received_at"),
        # The newest receipt (the channel's liveness) is one backward index step.
        Index("ix_whoop_webhook_event_received_at", "received_at"),
        # A user's open events (pending or failed) hold back webhook confirmation (SPEC 4.1).
        Index(
            "ix_whoop_webhook_event_user_open",
            "whoop_user_id",
            postgresql_where=column("status").in_(_OPEN),
            sqlite_where=column("status").in_(_OPEN),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(128), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    whoop_user_id: Mapped[int] = mapped_column(BigInteger)
    record_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lease of the job processing the event: no other job takes it before `claimed_until`.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Retries ran out for a passing reason (WHOOP 5xx, timeout): the reconciliation pass frees it.
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelState(Base):
    """The webhook channel's shared state (one row, id 1): refusals, suspension, the audit's place.

    Every process reads it; the newest receipt itself is the inbox's newest `received_at`.
    """

    __tablename__ = "whoop_channel_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    audit_cursor: Mapped[uuid.UUID | None] = mapped_column()
    audit_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    # How far the rotation has come, in time: each user audited moves it AUDIT_DAYS / users on.
    audit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
