"""Pushes of changes to the app's backend: one row per change, and one per attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, AppDeliveryAttempt, Change
from common.db.types import utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

_CHANGE = Change.__table__
_DELIVERY = AppDelivery.__table__

# The sender's statements, built once: a statement object reused keeps its compiled form and its
# cache key, where one built per call pays for both on every push (issue 25's bench 7).
_PENDING = (
    select(
        _CHANGE,
        _DELIVERY.c.attempts,
        _DELIVERY.c.next_attempt_at,
        _DELIVERY.c.created_at.label("queued_at"),
    )
    .join(_DELIVERY, _DELIVERY.c.change_seq == _CHANGE.c.seq)
    .where(_DELIVERY.c.user_id == bindparam("user_id"), _DELIVERY.c.status == PENDING)
    .order_by(_DELIVERY.c.change_seq)
    .limit(bindparam("limit"))
)
_NEXT_DUE = (
    select(_DELIVERY.c.next_attempt_at)
    .where(_DELIVERY.c.user_id == bindparam("user_id"), _DELIVERY.c.status == PENDING)
    .order_by(_DELIVERY.c.change_seq)
    .limit(1)
)
_ATTEMPT_INSERT = insert(AppDeliveryAttempt)
_SETTLE: dict[tuple[bool, frozenset[str]], Any] = {}


def _settle(postgres: bool, then: frozenset[str]) -> Any:
    """The push's update for one shape of outcome (`then`: the columns it sets besides its
    attempts and last error); on PostgreSQL with the attempt's insert as its CTE."""
    key = (postgres, then)
    if key not in _SETTLE:
        stmt = (
            update(AppDelivery)
            .where(AppDelivery.change_seq == bindparam("seq"))
            .values(
                attempts=AppDelivery.attempts + 1,
                last_error=bindparam("last_error"),
                **{name: bindparam(f"then_{name}") for name in sorted(then)},
            )
        )
        if postgres:
            attempt = insert(AppDeliveryAttempt).values(
                change_seq=bindparam("seq"),
                attempted_at=bindparam("attempted_at"),
                status=bindparam("outcome"),
                response_code=bindparam("response_code"),
                duration_ms=bindparam("duration_ms"),
                error=bindparam("error"),
            )
            stmt = stmt.add_cte(attempt.cte("attempt"))
        _SETTLE[key] = stmt
    return _SETTLE[key]


@dataclass(frozen=True)
class Pending:
    """A pending push: the change it carries and what its retries go by."""

    change: Change
    attempts: int
    next_attempt_at: datetime
    created_at: datetime

    @property
    def seq(self) -> int:
        """The change's number (the push's key)."""
        return self.change.seq


class DeliveryRepository:
    """The push queue of each user, oldest change first."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending(self, user_id: uuid.UUID, limit: int) -> list[Pending]:
        """The user's first `limit` pending pushes, in order (one statement, no ORM identity)."""
        connection = await self.session.connection()
        rows = (await connection.execute(_PENDING, {"user_id": user_id, "limit": limit})).all()
        return [
            Pending(
                Change(**{c.key: row._mapping[c] for c in _CHANGE.c}),
                row.attempts,
                row.next_attempt_at,
                row.queued_at,
            )
            for row in rows
        ]

    async def next_due_at(self, user_id: uuid.UUID) -> datetime | None:
        """When the user's oldest pending push is due (None: nothing pending)."""
        connection = await self.session.connection()
        due: datetime | None = (await connection.execute(_NEXT_DUE, {"user_id": user_id})).scalar()
        return due

    async def record_attempt(
        self,
        seq: int,
        *,
        ok: bool,
        response_code: int | None,
        duration_ms: int,
        error: str | None,
        **then: object,
    ) -> None:
        """Write down one POST and its outcome, and set `then` on the push (its new status, or
        when to try again). On PostgreSQL one statement (the attempt's insert is a CTE of the
        push's update), so it is atomic even in an autocommit session."""
        connection = await self.session.connection()
        postgres = connection.dialect.name == "postgresql"
        attempt = {
            "seq": seq,
            "attempted_at": utcnow(),
            "outcome": "ok" if ok else "failed",
            "response_code": response_code,
            "duration_ms": duration_ms,
            "error": error,
        }
        update_params = {
            "seq": seq,
            "last_error": None if ok else error,
            **{f"then_{name}": value for name, value in then.items()},
        }
        settle = _settle(postgres, frozenset(then))
        if postgres:
            await connection.execute(settle, attempt | update_params)
            return
        await connection.execute(
            _ATTEMPT_INSERT,
            {
                "change_seq": seq,
                "attempted_at": attempt["attempted_at"],
                "status": attempt["outcome"],
                "response_code": response_code,
                "duration_ms": duration_ms,
                "error": error,
            },
        )
        await connection.execute(settle, update_params)

    async def first_attempt(self, seq: int, since: datetime) -> datetime | None:
        """When the push was first tried since `since` (its creation or its reopening)."""
        stmt = select(func.min(AppDeliveryAttempt.attempted_at)).where(
            AppDeliveryAttempt.change_seq == seq, AppDeliveryAttempt.attempted_at >= since
        )
        first: datetime | None = await self.session.scalar(stmt)
        return first

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
