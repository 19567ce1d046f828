"""The read's one-statement look: connection, sync state and, when fresh, the records' JSON texts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import (
    Attempt,
    ConnectionRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.db.repositories.read_state import ReadStateRepository, Window
from common.types import ConnectionStatus, DataType, SyncStatus, Trigger
from tests.common.db import samples

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def _user_with_sleeps(session: AsyncSession, days: int) -> tuple[uuid.UUID, list[str]]:
    """A connected user synced at T0 with one sleep a day before T0; their ids, newest first."""
    user = uuid.uuid4()
    whoop_user = int(user.int % 2_000_000_000)
    await ConnectionRepository(session).save(
        user_id=user,
        whoop_user_id=whoop_user,
        access_token_enc="a",
        refresh_token_enc="r",
        expires_at=T0 + timedelta(days=1),
        scopes="read:sleep offline",
    )
    sleeps = [
        samples.sleep(start=T0 - timedelta(days=i + 1), cycle_id=i + 1, whoop_user_id=whoop_user)
        for i in range(days)
    ]
    await RecordRepository(session, DataType.SLEEP).upsert(user, sleeps)
    await SyncLogRepository(session).record(
        Attempt(user, DataType.SLEEP, Trigger.READ, SyncStatus.SUCCESS, days, T0, 5, None)
    )
    await session.flush()
    return user, [str(s["id"]) for s in sleeps]


def _ids(texts: list[str] | None) -> list[str]:
    assert texts is not None
    return [orjson.loads(t)["id"] for t in texts]


async def test_fresh_read_has_state_and_window_newest_first(any_session: AsyncSession) -> None:
    user, ids = await _user_with_sleeps(any_session, 5)
    repo = ReadStateRepository(await any_session.connection())
    found = await repo.read(user, DataType.SLEEP, Window(30), T0 - timedelta(hours=1))
    assert found is not None
    assert found.state.connection_status is ConnectionStatus.ACTIVE
    assert found.state.last_sync_at == T0
    assert found.state.sync_status is SyncStatus.SUCCESS
    assert _ids(found.records) == ids
    window = Window(2, start=T0 - timedelta(days=4), end=T0 - timedelta(days=1))
    found = await repo.read(user, DataType.SLEEP, window, T0 - timedelta(hours=1))
    assert found is not None
    assert _ids(found.records) == ids[1:3]  # end exclusive, newest first, limited


async def test_stale_or_forced_read_carries_no_records(any_session: AsyncSession) -> None:
    user, _ = await _user_with_sleeps(any_session, 2)
    repo = ReadStateRepository(await any_session.connection())
    stale = await repo.read(user, DataType.SLEEP, Window(), T0)  # synced at, not after, T0
    forced = await repo.read(user, DataType.SLEEP, Window(), None)
    assert stale is not None
    assert stale.records is None
    assert forced is not None
    assert forced.records is None
    assert forced.state.last_sync_at == T0


async def test_never_synced_type_and_unknown_user(any_session: AsyncSession) -> None:
    user, _ = await _user_with_sleeps(any_session, 1)
    repo = ReadStateRepository(await any_session.connection())
    found = await repo.read(user, DataType.CYCLE, Window(), T0 - timedelta(days=30))
    assert found is not None
    assert (found.state.last_sync_at, found.records) == (None, None)
    assert found.state.sync_status is SyncStatus.NEVER_SYNCED
    assert await repo.read(uuid.uuid4(), DataType.SLEEP, Window(), None) is None
