"""Reading one user's cached records out in full, a page at a time (SPEC §3.5, export).

Keyset pagination over the read API's own order (the resource's time, then its key, newest
first), so that each page is one short indexed read that starts where the last one ended:
nothing is held open between pages and no page costs more than its own rows, however many
records the user has.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories.record_kinds import KINDS
from common.types import DataType

__all__ = ["ExportRepository", "Position"]


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last record's time and key (the next page starts after it)."""

    time: datetime
    key: Any


class ExportRepository:
    """Pages of one resource's stored WHOOP objects of a user, newest first."""

    def __init__(self, session: AsyncSession, data_type: DataType) -> None:
        self.session = session
        self.kind = KINDS[data_type]

    async def page(
        self, user_id: uuid.UUID, after: Position | None, limit: int
    ) -> tuple[list[str], Position | None]:
        """Up to `limit` stored objects (JSON text) after `after`, and where they ended (None when
        the page is empty)."""
        table = self.kind.table
        time_col, key_col = table.c[self.kind.time_column], table.c[self.kind.key]
        stmt = select(time_col, key_col, table.c.data).where(table.c.user_id == user_id)
        if after is not None:
            time = literal(after.time, time_col.type)
            stmt = stmt.where(
                time_col <= time,
                or_(
                    time_col < time,
                    and_(time_col == time, key_col < literal(after.key, key_col.type)),
                ),
            )
        stmt = stmt.order_by(time_col.desc(), key_col.desc()).limit(limit)
        rows = (await self.session.execute(stmt)).all()
        if not rows:
            return [], None
        return [row[2] for row in rows], Position(rows[-1][0], rows[-1][1])
