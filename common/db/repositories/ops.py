"""The operators' durable tallies: WHOOP calls per hour by trigger, and counted incidents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import OpsIncident, WhoopCallHour
from common.db.repositories.base import dialect_insert
from common.db.types import utcnow

AUDIT_MISS = "audit_miss"
RECONCILE_FAILURE = "reconcile_failure"
WEBHOOK_REFUSAL = "webhook_refusal"


class OpsRepository:
    """All SQL of `whoop_call_hour` and `whoop_ops_incident` (the caller commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_calls(self, counts: Mapping[tuple[datetime, str], int]) -> None:
        """Add calls to their (hour, trigger) rows, creating the rows on first use."""
        table = WhoopCallHour.__table__
        for (hour, trigger), calls in sorted(counts.items()):
            stmt = dialect_insert(self.session, table).values(
                hour=hour, trigger=trigger, calls=calls
            )
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["hour", "trigger"],
                    set_={"calls": table.c.calls + stmt.excluded.calls},
                )
            )

    async def calls_since(self, since: datetime) -> list[tuple[datetime, str, int]]:
        """(hour, trigger, calls) of every hour from the one holding `since`, oldest first."""
        stmt = (
            select(WhoopCallHour.hour, WhoopCallHour.trigger, WhoopCallHour.calls)
            .where(WhoopCallHour.hour >= since.replace(minute=0, second=0, microsecond=0))
            .order_by(WhoopCallHour.hour, WhoopCallHour.trigger)
        )
        return [(h, t, int(c)) for h, t, c in (await self.session.execute(stmt)).all()]

    async def note(
        self, kind: str, detail: str | None = None, count: int = 1, at: datetime | None = None
    ) -> None:
        """Record an incident (an audit miss, a failed user in a pass, a refused webhook)."""
        self.session.add(OpsIncident(kind=kind, detail=detail, count=count, at=at or utcnow()))

    async def count_since(self, kind: str, since: datetime) -> int:
        """How many of one kind since a moment (an incident's `count` adds up)."""
        stmt = select(func.coalesce(func.sum(OpsIncident.count), 0)).where(
            OpsIncident.kind == kind, OpsIncident.at >= since
        )
        return int(await self.session.scalar(stmt) or 0)
