"""Records WHOOP has not scored yet (PENDING_SCORE), fetched again once their type's threshold
has passed (SPEC §4.2: the reconciliation pass)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import structlog

from common.db.repositories import RecordRepository
from common.db.types import utcnow
from common.ratelimit import Priority
from common.sync.events import fetch_by_key
from common.sync.results import ALL_TYPES, Writes
from common.sync.service import SyncService
from common.types import SyncStatus, Trigger
from common.whoop.errors import WhoopError

__all__ = ["PENDING_SCORE", "refetch_pending"]

log = structlog.get_logger(__name__)

PENDING_SCORE = "PENDING_SCORE"


async def refetch_pending(service: SyncService, user_id: uuid.UUID, per_type: int = 25) -> int:
    """Fetch again the records still PENDING_SCORE; how many came back scored or changed.

    Only records not written for longer than their type's threshold: WHOOP sends a webhook
    when it scores a record, so a pending record fetched recently needs nothing more.
    """
    session, now = service.session, utcnow()
    keys = {
        data_type: await RecordRepository(session, data_type).keys_in_state(
            user_id,
            PENDING_SCORE,
            limit=per_type,
            synced_before=now - timedelta(seconds=service.settings.threshold_seconds(data_type)),
        )
        for data_type in ALL_TYPES
    }
    await session.rollback()  # a read only: nothing stays open across WHOOP's calls
    started, clock = utcnow(), time.monotonic()
    client = service.client(user_id, Priority.BACKGROUND)
    writes, error = Writes(), None
    try:
        for data_type, type_keys in keys.items():
            for key in type_keys:
                await fetch_by_key(client, data_type, key, writes)
    except WhoopError as exc:
        error = exc
    written = (await service.apply(user_id, writes)).counts
    if error is None:  # every one was asked again: each waits another threshold
        for data_type, type_keys in keys.items():
            repo = RecordRepository(session, data_type)
            await repo.mark_checked(user_id, type_keys, now)
    for data_type, count in written.items():
        await service.record(  # by id: confirms nothing (SPEC 4.1)
            user_id,
            data_type,
            Trigger.RECONCILE,
            SyncStatus.SUCCESS,
            count,
            started,
            clock,
            confirms=False,
        )
    if error is not None:
        log.warning("sync.pending_refetch_failed", error=error.reason)
    return sum(written.values())
