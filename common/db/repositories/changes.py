"""The change feed's SQL: writers record changes in an unnumbered outbox inside their own
transaction; one drainer at a time numbers them into `whoop_change` in its own commit order.

Why this is gap-safe: a number is handed out only by the drainer, under a deployment-wide lock
(a PostgreSQL advisory transaction lock; SQLite has a single writer anyway), and the drainer's
transaction commits before the lock is released. Every number a later drain hands out is larger
and becomes visible later, so a reader that has seen number N can never see a smaller number
appear afterwards, whatever order the writers committed in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, AppDeliveryAttempt, Change, ChangeHorizon, ChangeOutbox
from common.db.repositories.outbox import OUTBOX_COLUMNS
from common.db.types import utcnow

# An advisory lock key of the drainer (any constant; "whoopsync" in ASCII, folded into 63 bits).
DRAIN_LOCK_KEY = 0x77686F6F7073796E


@dataclass(frozen=True)
class Page:
    """A page of one user's changes and the horizon and head of the same snapshot."""

    horizon: int
    head: int
    after: int
    changes: list[Change]

    @property
    def expired(self) -> bool:
        """The page was asked after a number retention has already passed (410)."""
        return self.after < self.horizon


@dataclass(frozen=True, order=True)
class Numbered:
    """A change the drainer has just numbered."""

    seq: int
    user_id: uuid.UUID
    changed_at: datetime


_OUTBOX: Any = ChangeOutbox.__table__


def _take_statement() -> Any:
    """The drain's take, built once: the oldest `:batch` outbox rows, deleted and returned."""
    outbox: Any = ChangeOutbox.__table__
    oldest = select(outbox.c.id).order_by(outbox.c.id).limit(bindparam("batch"))
    return (
        delete(outbox)
        .where(outbox.c.id.in_(oldest.scalar_subquery()))
        .returning(outbox.c.id, *(outbox.c[c] for c in OUTBOX_COLUMNS))
    )


_TAKE = _take_statement()
_NUMBER = insert(Change).returning(
    Change.seq, Change.user_id, Change.changed_at, sort_by_parameter_order=True
)


def _drain_statement(deliveries: bool) -> Any:
    """PostgreSQL's drain in one statement (one round trip, its own transaction in autocommit):
    the lock, then the oldest `:batch` outbox rows deleted and numbered into the feed in outbox
    order (with `deliveries`, each also gets a pending push). The lock is taken before any row
    reaches the numbering, and held until the statement commits; rows another drain took while
    this one waited for the lock are skipped by the delete. The rows never leave the server."""
    columns = ", ".join(f'"{c}"' for c in OUTBOX_COLUMNS)
    numbered = "numbered"
    push = ""
    if deliveries:
        numbered = "numbered_rows"
        push = (
            ", pushes AS (INSERT INTO whoop_app_delivery "
            "(change_seq, user_id, status, attempts, next_attempt_at, created_at) "
            "SELECT seq, user_id, 'pending', 0, :now, :now FROM numbered_rows)"
        )
    # Built from this module's constants only (no input reaches it), once at import.
    sql = (
        "WITH drain_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(:key) AS held), "  # noqa: S608
        "taken AS (DELETE FROM whoop_change_outbox WHERE id IN ("
        "SELECT o.id FROM whoop_change_outbox AS o CROSS JOIN drain_lock "
        "ORDER BY o.id LIMIT :batch) "
        f"RETURNING id, {columns}), "
        f"{numbered} AS (INSERT INTO whoop_change ({columns}) "
        f"SELECT {columns} FROM taken ORDER BY id RETURNING seq, user_id, changed_at)"
        f"{push} SELECT seq, user_id, changed_at FROM {numbered}"
    )
    return text(sql).columns(
        Change.__table__.c.seq, Change.__table__.c.user_id, Change.__table__.c.changed_at
    )


_DRAIN = {deliveries: _drain_statement(deliveries) for deliveries in (False, True)}


def _read_page_statement() -> tuple[Any, Any]:
    """`read_page`'s statement, built once (its compiled form and cache key are kept): the
    horizon, the head and the page after `:after` (null: after the horizon), with bound user,
    cursor and limit."""
    horizon = (
        select(func.coalesce(func.max(ChangeHorizon.pruned_through), 0))
        .where(ChangeHorizon.id == 1)
        .scalar_subquery()
    )
    head = select(func.coalesce(func.max(Change.seq), 0)).scalar_subquery()
    start = func.coalesce(bindparam("after", type_=BigInteger()), horizon)
    changes = Change.__table__
    page = (
        select(changes)
        .where(changes.c.user_id == bindparam("user_id"), changes.c.seq > start)
        .order_by(changes.c.seq)
        .limit(bindparam("limit"))
        .subquery("page")
    )
    meta = select(horizon.label("horizon"), head.label("head")).subquery("meta")
    stmt = (
        select(meta.c.horizon, meta.c.head, page)
        .select_from(meta.outerjoin(page, true()))
        .order_by(page.c.seq)
    )
    return stmt, page


_READ_PAGE, _PAGE = _read_page_statement()


class ChangeRepository:
    """Numbering, reading and pruning of the change feed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def drain(self, *, batch: int = 500, deliveries: bool = False) -> list[Numbered]:
        """Move up to `batch` committed outbox rows into the feed, numbered in outbox order
        (with `deliveries`, each also gets a pending push). The caller commits; on PostgreSQL
        this is one statement, so an autocommit session commits it by itself."""
        connection = await self.session.connection()
        if self._postgres:
            params = {"key": DRAIN_LOCK_KEY, "batch": batch, "now": utcnow()}
            result = await connection.execute(_DRAIN[deliveries], params)
            return sorted(Numbered(int(s), u, c) for s, u, c in result.all())
        taken = (await connection.execute(_TAKE, {"batch": batch})).all()
        if not taken:
            return []
        rows = [dict(zip(OUTBOX_COLUMNS, row[1:], strict=True)) for row in sorted(taken)]
        # One statement compiled once for any count: SQLAlchemy sends the rows as one VALUES
        # list ordered by their position (`sort_by_parameter_order`), so both backends number
        # them in the list's order.
        connection = await self.session.connection()
        result = await connection.execute(_NUMBER, rows)
        numbered = sorted(Numbered(int(s), u, c) for s, u, c in result.all())
        if deliveries:
            now = utcnow()
            await self.session.execute(
                insert(AppDelivery),
                [
                    {
                        "change_seq": n.seq,
                        "user_id": n.user_id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for n in numbered
                ],
            )
        return numbered

    async def head(self) -> int:
        """The highest change number (0 when the feed is empty)."""
        return int(await self.session.scalar(select(func.max(Change.seq))) or 0)

    async def horizon(self) -> int:
        """The highest number retention has deleted: a cursor below it has expired."""
        return int(
            await self.session.scalar(
                select(ChangeHorizon.pruned_through).where(ChangeHorizon.id == 1)
            )
            or 0
        )

    async def page(
        self, user_id: uuid.UUID, after: int, limit: int, *, upto: int | None = None
    ) -> list[Change]:
        """Up to `limit` of the user's changes numbered above `after` (and at most `upto`)."""
        stmt = select(Change).where(Change.user_id == user_id, Change.seq > after)
        if upto is not None:
            stmt = stmt.where(Change.seq <= upto)
        stmt = stmt.order_by(Change.seq).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def read_page(self, user_id: uuid.UUID, after: int | None, limit: int) -> Page:
        """Up to `limit` of the user's changes numbered above `after` (None: above the horizon),
        read in one statement with the horizon and the head, so that one snapshot judges the
        cursor and yields the page: a prune that commits before it makes the cursor expired, one
        that commits after it deleted nothing the page shows as missing."""
        connection = await self.session.connection()
        found = (
            await connection.execute(
                _READ_PAGE, {"user_id": user_id, "after": after, "limit": limit}
            )
        ).all()
        # A prune may have emptied the table: the head is never below what it deleted.
        seen_horizon = int(found[0].horizon)
        seen_head = max(int(found[0].head), seen_horizon)
        changes = [
            Change(**{c.key: r._mapping[c] for c in _PAGE.c}) for r in found if r.seq is not None
        ]
        return Page(seen_horizon, seen_head, seen_horizon if after is None else after, changes)

    async def get(self, seq: int) -> Change | None:
        """One change by number."""
        return await self.session.get(Change, seq)

    async def prune_batch(self, before: datetime, batch: int) -> int:
        """Delete the oldest changes (and their pushes), at most `batch` of them, up to the newest
        one made before `before`, and move the horizon over them in the same transaction (the
        caller commits); how many changes went."""
        target = select(func.max(Change.seq)).where(Change.changed_at < before).scalar_subquery()
        nth = (
            select(Change.seq)
            .where(Change.seq <= target)
            .order_by(Change.seq)
            .offset(batch - 1)
            .limit(1)
            .scalar_subquery()
        )
        through = await self.session.scalar(select(func.coalesce(nth, target)))
        if through is None:
            return 0
        await self.session.execute(
            delete(AppDeliveryAttempt).where(AppDeliveryAttempt.change_seq <= through)
        )
        await self.session.execute(delete(AppDelivery).where(AppDelivery.change_seq <= through))
        result = await self.session.execute(delete(Change).where(Change.seq <= through))
        await self.session.execute(
            update(ChangeHorizon)
            .where(ChangeHorizon.id == 1, ChangeHorizon.pruned_through < through)
            .values(pruned_through=through)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
