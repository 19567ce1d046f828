"""The export's keyset pages on both backends: records sharing a time are neither lost nor
repeated across pages, and another user's records never appear."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import RecordRepository
from common.db.repositories.export import ExportRepository, Position
from common.types import DataType
from tests.common.db import samples

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def test_pages_cover_records_that_share_a_time_once_each(any_session: AsyncSession) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    workouts = RecordRepository(any_session, DataType.WORKOUT)
    same_time = [samples.workout(start=T0) for _ in range(5)]
    older = [samples.workout(start=T0 - timedelta(hours=h)) for h in (1, 2)]
    await workouts.upsert(user, same_time + older)
    await workouts.upsert(other, [samples.workout(start=T0)])
    repo = ExportRepository(any_session, DataType.WORKOUT)
    seen: list[str] = []
    after: Position | None = None
    for _ in range(10):
        page, after = await repo.page(user, after, 2)
        seen += page
        if len(page) < 2:
            break
    ids = [orjson.loads(text)["id"] for text in seen]
    assert len(ids) == 7
    assert set(ids) == {w["id"] for w in same_time + older}
    # Newest first, as the read API answers.
    assert ids[5:] == [older[0]["id"], older[1]["id"]]
