"""A user's WHOOP connection and the pending OAuth states of the connect flow."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow


class WhoopConnection(Base):
    """App user UUID ↔ WHOOP user id, with the WHOOP tokens encrypted at rest."""

    __tablename__ = "whoop_connection"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    whoop_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="active", index=True)
    token_version: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set when the backfill is due, cleared when it has finished; reconciliation finishes it.
    backfill_pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The backfill's progress (SPEC 3.2): pending | running | done | failed, over how many days,
    # when it started and finished, why it failed; `backfill_progress` is JSON text holding the
    # records written per type, the types done, and each failing type's tries and next try.
    backfill_status: Mapped[str] = mapped_column(String(16), default="pending")
    backfill_days: Mapped[int] = mapped_column(Integer, default=0)
    backfill_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backfill_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backfill_error: Mapped[str | None] = mapped_column(Text)
    backfill_progress: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """A single-use `state` of the connect flow, bound to the user who asked for it."""

    __tablename__ = "whoop_oauth_state"
    __table_args__ = (Index("ix_whoop_oauth_state_user_created", "user_id", "created_at"),)

    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # for retention
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
