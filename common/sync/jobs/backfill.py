"""The backfill's runner: one user's backfill in one session, committed at each of its steps."""

from __future__ import annotations

import uuid

from common.sync.backfill import Backfill
from common.sync.context import SyncContext
from common.sync.results import SyncResult

__all__ = ["run_backfill"]


async def run_backfill(
    sync: SyncContext, user_id: uuid.UUID, days: int | None = None
) -> list[SyncResult]:
    """Pull every collection over the last `days` (BACKFILL_DAYS), at background priority, page
    by page with its progress on the connection (`common.sync.backfill`), committing at each
    step, so that every process sees it move and a failure of one type keeps what the others
    wrote; the results of the types tried. The backfill job, the reconciliation pass and the
    api's in-process backfills run it."""
    async with sync.session_factory() as session:
        backfill = Backfill(sync.service(session), user_id, days)
        async for _ in backfill.steps():
            await session.commit()
    return backfill.results
