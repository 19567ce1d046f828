"""The retention pass: every rule of `common.db.repositories.retention`, batch after batch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories.retention import RULES, RetentionRule, delete_batch
from common.db.types import utcnow

__all__ = ["BATCH", "prune"]

log = structlog.get_logger(__name__)

BATCH = 1000


async def prune(
    session_factory: async_sessionmaker[AsyncSession],
    days: int,
    *,
    rules: list[RetentionRule] | None = None,
    batch: int = BATCH,
) -> dict[str, int]:
    """Delete what is older than `days` (per rule), one committed batch at a time; rows per rule."""
    cutoff, deleted = utcnow() - timedelta(days=days), {}
    for rule in RULES if rules is None else rules:
        total = 0
        while True:
            async with session_factory() as session:
                count = await delete_batch(session, rule, cutoff, batch)
                await session.commit()
            total += count
            if count < batch:
                break
            await asyncio.sleep(0)  # let the process's other work run between batches
        deleted[rule.name] = total
    log.info("retention.pruned", days=days, **deleted)
    return deleted
