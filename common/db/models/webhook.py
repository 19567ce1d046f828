"""The webhook inbox: every verified WHOOP event, recorded before it is acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow


class WebhookEvent(Base):
    """One WHOOP webhook delivery, unique by `trace_id`."""

    __tablename__ = "whoop_webhook_event"
    __table_args__ = (Index("ix_whoop_webhook_event_status_received", "status", "received_at"),)

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
