"""Pushes of changes to the app's backend: one row per change, and one per attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, AppDeliveryAttempt, Change
from common.db.types import utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class DeliveryRepository:
    """The push queue of each user, oldest change first."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def head_of(self, user_id: uuid.UUID) -> tuple[AppDelivery, Change] | None:
        """The user's oldest pending push and its change: pushes go out in order per user."""
        stmt = (
            select(AppDelivery, Change)
            .join(Change, Change.seq == AppDelivery.change_seq)
            .where(AppDelivery.user_id == user_id, AppDelivery.status == PENDING)
            .order_by(AppDelivery.change_seq)
            .limit(1)
        )
        row = (await self.session.execute(stmt)).first()
        return None if row is None else (row[0], row[1])

    async def record_attempt(
        self,
        seq: int,
        *,
        ok: bool,
        response_code: int | None,
        duration_ms: int,
        error: str | None,
    ) -> None:
        """Write down one POST and its outcome."""
        await self.session.execute(
            insert(AppDeliveryAttempt).values(
                change_seq=seq,
                attempted_at=utcnow(),
                status="ok" if ok else "failed",
                response_code=response_code,
                duration_ms=duration_ms,
                error=error,
            )
        )
        await self.session.execute(
            update(AppDelivery)
            .where(AppDelivery.change_seq == seq)
            .values(attempts=AppDelivery.attempts + 1, last_error=None if ok else error)
        )

    async def first_attempt(self, seq: int, since: datetime) -> datetime | None:
        """When the push was first tried since `since` (its creation or its reopening)."""
        stmt = select(func.min(AppDeliveryAttempt.attempted_at)).where(
            AppDeliveryAttempt.change_seq == seq, AppDeliveryAttempt.attempted_at >= since
        )
        first: datetime | None = await self.session.scalar(stmt)
        return first

    async def delivered(self, seq: int) -> None:
        """The receiver answered 2xx."""
        await self._set(seq, status=DELIVERED, delivered_at=utcnow())

    async def retry_at(self, seq: int, moment: datetime) -> None:
        """Try this push again at `moment` (later pushes of the user wait behind it)."""
        await self._set(seq, next_attempt_at=moment)

    async def give_up(self, seq: int) -> None:
        """Retries ran out: the push is failed (replay-app sends it again)."""
        await self._set(seq, status=FAILED)

    async def _set(self, seq: int, **values: object) -> None:
        await self.session.execute(
            update(AppDelivery).where(AppDelivery.change_seq == seq).values(**values)
        )

    async def due_users(self, now: datetime, limit: int = 1000) -> list[uuid.UUID]:
        """Users with a pending push whose time has come."""
        stmt = (
            select(AppDelivery.user_id)
            .where(AppDelivery.status == PENDING, AppDelivery.next_attempt_at <= now)
            .group_by(AppDelivery.user_id)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def reopen(self, *, since: datetime | None, status: str | None) -> list[uuid.UUID]:
        """Make matching pushes pending again, due now, with a fresh day of retries; the users."""
        clauses: list[ColumnElement[bool]] = []
        if since is not None:
            changed = select(Change.seq).where(Change.changed_at >= since)
            clauses.append(AppDelivery.change_seq.in_(changed.scalar_subquery()))
        if status is not None:
            clauses.append(AppDelivery.status == status)
        users = list(
            (
                await self.session.scalars(
                    select(AppDelivery.user_id).where(*clauses).group_by(AppDelivery.user_id)
                )
            ).all()
        )
        now = utcnow()
        await self.session.execute(
            update(AppDelivery)
            .where(*clauses)
            .values(status=PENDING, next_attempt_at=now, created_at=now, delivered_at=None)
        )
        return users

    async def counts(self) -> dict[str, int]:
        """How many pushes are in each state."""
        stmt = select(AppDelivery.status, func.count()).group_by(AppDelivery.status)
        return {status: int(n) for status, n in (await self.session.execute(stmt)).all()}
