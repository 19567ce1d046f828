"""Emptying the database between tests that commit over real HTTP or real processes."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from common.db.models import Base, ChangeHorizon


async def empty_all(db: AsyncConnection | AsyncSession) -> None:
    """Delete every row of every table, tombstones too, but keep the change feed's horizon row
    (seeded by the migration), reset to nothing pruned."""
    for table in reversed(Base.metadata.sorted_tables):
        if table is not ChangeHorizon.__table__:
            await db.execute(delete(table))
    await db.execute(update(ChangeHorizon).values(pruned_through=0))
