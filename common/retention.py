"""The retention pass (SPEC §2, RETENTION_DAYS): every rule of `common.db.repositories.retention`,
batch after batch. Run by the `retention` cron and, for the change feed alone, `ChangeFeed.prune`."""

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
    """Delete what is older than `days` (per rule), one committed batch at a time; rows per rule.

    Each batch is its own unit of work by design: a short transaction, so that no lock is held
    for long and SQLite's single writer is free between batches; a pass over a backlog of
    millions of rows is never one transaction, and one that stops keeps what it deleted.
    """
    cutoff, deleted = utcnow() - timedelta(days=days), {}
    for rule in RULES if rules is None else rules:
        total = 0
        while True:
            async with session_factory.begin() as session:
                count = await delete_batch(session, rule, cutoff, batch)
            total += count
            if count < batch:
                break
            await asyncio.sleep(0)  # let the process's other work run between batches
        deleted[rule.name] = total
    log.info("retention.pruned", days=days, **deleted)
    return deleted
