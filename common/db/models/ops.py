"""What operators look back on (SPEC §3.6): WHOOP calls per hour by trigger, and the incidents of
the reconciliation pass and the webhook channel, kept in the database so that every process (and
a restarted one) reports the same numbers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models.base import Base
from common.db.types import UTCDateTime, utcnow

_ID = BigInteger().with_variant(Integer, "sqlite")


class WhoopCallHour(Base):
    """WHOOP calls made in one UTC hour for one trigger (webhook, read, backfill, …)."""

    __tablename__ = "whoop_call_hour"
    __table_args__ = (UniqueConstraint("hour", "trigger"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16))
    calls: Mapped[int] = mapped_column(Integer, default=0)


class OpsIncident(Base):
    """One thing that went wrong and is counted over a window: an audit miss (`detail` the data
    type, `count` the records), a reconciliation failure (`detail` the pass), a webhook refusal."""

    __tablename__ = "whoop_ops_incident"
    __table_args__ = (Index("ix_whoop_ops_incident_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
