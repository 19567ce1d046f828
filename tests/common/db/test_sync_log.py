from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import Attempt, SyncLogRepository
from common.types import DataType, SyncStatus, Trigger

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def attempt(
    user: uuid.UUID, status: SyncStatus, at: datetime, records: int = 3, error: str | None = None
) -> Attempt:
    return Attempt(user, DataType.SLEEP, Trigger.READ, status, records, at, 12, error)


async def test_success_sets_last_sync_and_failure_keeps_it(any_session: AsyncSession) -> None:
    repo = SyncLogRepository(any_session)
    user = uuid.uuid4()
    await repo.record(attempt(user, SyncStatus.SUCCESS, T0))
    await repo.record(
        attempt(user, SyncStatus.FAILED, T0 + timedelta(hours=3), 0, "WHOOP timed out")
    )
    row = await repo.get(user, DataType.SLEEP)
    assert row is not None
    assert row.last_sync_at == T0
    assert row.sync_status == "failed"
    assert row.error_message == "WHOOP timed out"
    assert row.last_attempt_at == T0 + timedelta(hours=3)
    await repo.record(attempt(user, SyncStatus.SUCCESS, T0 + timedelta(hours=4), 5))
    row = await repo.get(user, DataType.SLEEP)
    assert row is not None
    assert (row.last_sync_at, row.sync_status, row.records_synced, row.error_message) == (
        T0 + timedelta(hours=4),
        "success",
        5,
        None,
    )


async def test_one_row_per_user_and_type_and_full_history(any_session: AsyncSession) -> None:
    repo = SyncLogRepository(any_session)
    user = uuid.uuid4()
    for i in range(3):
        await repo.record(attempt(user, SyncStatus.SUCCESS, T0 + timedelta(minutes=i), records=i))
    assert list(await repo.for_user(user)) == [DataType.SLEEP]
    history = await repo.history(user, DataType.SLEEP)
    assert [h.records for h in history] == [2, 1, 0]
    assert all(h.trigger == "read" and h.duration_ms == 12 for h in history)


async def test_first_failure_leaves_last_sync_null(any_session: AsyncSession) -> None:
    repo = SyncLogRepository(any_session)
    user = uuid.uuid4()
    await repo.record(attempt(user, SyncStatus.REAUTHORIZATION_REQUIRED, T0, 0, "refresh refused"))
    row = await repo.get(user, DataType.SLEEP)
    assert row is not None
    assert row.last_sync_at is None
    assert row.last_fetch_at is None
