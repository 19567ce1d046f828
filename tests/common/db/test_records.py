"""The guarded upsert, deletes and newest-first reads, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common.db.repositories import RecordRepository
from common.db.repositories.guarded_upsert import BATCH
from common.types import DataType, UpsertResult
from tests.common.db import samples

USER = uuid.UUID("a57f70b4-d0a4-4aef-b721-a4b526f64869")
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def test_upsert_inserts_then_reports_unchanged_for_equal_updated_at(
    any_session: AsyncSession,
) -> None:
    repo = RecordRepository(any_session, DataType.SLEEP)
    obj = samples.sleep(start=T0)
    key = uuid.UUID(obj["id"])
    assert (await repo.upsert(USER, [obj])).results == {key: UpsertResult.INSERTED}
    changed = {**obj, "score_state": "UNSCORABLE"}
    assert (await repo.upsert(USER, [changed])).results == {key: UpsertResult.UNCHANGED}
    assert (await repo.get(key)) == obj


async def test_upsert_newer_updated_at_wins(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.SLEEP)
    old = samples.sleep(start=T0, updated_at=T0 + timedelta(hours=9), performance=50.0)
    new = {
        **old,
        "updated_at": samples.iso(T0 + timedelta(hours=10)),
        "score": {**old["score"], "sleep_performance_percentage": 80.0},
    }
    key = uuid.UUID(old["id"])
    await repo.upsert(USER, [old])
    assert (await repo.upsert(USER, [new])).results == {key: UpsertResult.UPDATED}
    assert (await repo.get(key)) == new


async def test_upsert_ignores_older_updated_at(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    new = samples.cycle(cycle_id=7, start=T0, updated_at=T0 + timedelta(hours=5))
    old = {
        **new,
        "updated_at": samples.iso(T0 + timedelta(hours=1)),
        "score_state": "PENDING_SCORE",
    }
    await repo.upsert(USER, [new])
    assert (await repo.upsert(USER, [old])).results == {7: UpsertResult.UNCHANGED}
    assert (await repo.get(7)) == new


async def test_upsert_batch_keeps_newest_duplicate_and_counts(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    a1 = samples.cycle(cycle_id=1, start=T0, updated_at=T0 + timedelta(hours=1))
    a2 = {**a1, "updated_at": samples.iso(T0 + timedelta(hours=2))}
    b = samples.cycle(cycle_id=2, start=T0 + timedelta(days=1))
    summary = await repo.upsert(USER, [a2, a1, b])
    assert summary.count(UpsertResult.INSERTED) == 2
    assert summary.written == 2
    assert (await repo.get(1)) == a2


async def test_upsert_of_more_rows_than_one_statement_takes_writes_them_all(
    any_session: AsyncSession,
) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    objs = [samples.cycle(cycle_id=i, start=T0 + timedelta(days=i)) for i in range(BATCH * 2 + 30)]
    objs[-1] = {**objs[-1], "end": None}  # the open cycle: a column of NULLs in its statement
    summary = await repo.upsert(USER, objs)
    assert summary.count(UpsertResult.INSERTED) == len(objs)
    assert await repo.get(len(objs) - 1) == objs[-1]
    assert len(await repo.read(USER, limit=1000)) == len(objs)


async def test_upsert_statement_is_compiled_once_per_row_count(any_session: AsyncSession) -> None:
    """The hot path of every event: the second write of the same shape reuses the compiled SQL."""
    hits: list[object] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        context = args[-2]
        if statement.lstrip().startswith("WITH incoming"):
            hits.append(context.cache_hit == context.dialect.CACHE_HIT)  # type: ignore[attr-defined]

    engine = any_session.get_bind()
    repo = RecordRepository(any_session, DataType.SLEEP)
    event.listen(engine, "after_cursor_execute", seen)
    try:
        for hour in range(3):
            await repo.upsert(USER, [samples.sleep(start=T0 + timedelta(hours=hour))])
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    assert hits[1:] == [True, True]


async def test_recovery_is_keyed_by_cycle_and_read_by_created_at(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.RECOVERY)
    objs = [
        samples.recovery(cycle_id=100 + i, sleep_id=uuid.uuid4(), created_at=T0 + timedelta(days=i))
        for i in range(3)
    ]
    await repo.upsert(USER, objs)
    assert [o["cycle_id"] for o in await repo.read(USER)] == [102, 101, 100]
    assert await repo.delete_where(USER, "sleep_id", uuid.UUID(objs[1]["sleep_id"])) == 1
    assert [o["cycle_id"] for o in await repo.read(USER)] == [102, 100]


async def test_list_is_newest_first_with_limit(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.WORKOUT)
    objs = [samples.workout(start=T0 + timedelta(hours=i)) for i in (3, 1, 4, 0, 2)]
    await repo.upsert(USER, objs)
    listed = await repo.read(USER, limit=3)
    assert [o["start"] for o in listed] == [samples.iso(T0 + timedelta(hours=h)) for h in (4, 3, 2)]


async def test_list_window_start_inclusive_end_exclusive(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    await repo.upsert(
        USER, [samples.cycle(cycle_id=i, start=T0 + timedelta(days=i)) for i in range(5)]
    )
    listed = await repo.read(USER, start=T0 + timedelta(days=1), end=T0 + timedelta(days=3))
    assert [o["id"] for o in listed] == [2, 1]


async def test_list_never_shows_other_users_records(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    other = uuid.uuid4()
    await repo.upsert(USER, [samples.cycle(cycle_id=1, start=T0)])
    await repo.upsert(other, [samples.cycle(cycle_id=2, start=T0, whoop_user_id=99)])
    assert [o["id"] for o in await repo.read(USER)] == [1]
    assert await repo.delete(other, 1) == 0
    assert await repo.count(USER) == 1


async def test_delete_removes_the_record(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.SLEEP)
    obj = samples.sleep(start=T0)
    await repo.upsert(USER, [obj])
    assert await repo.delete(USER, uuid.UUID(obj["id"])) == 1
    assert await repo.get(uuid.UUID(obj["id"])) is None


async def test_pending_score_keys(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.SLEEP)
    pending = samples.sleep(start=T0, score_state="PENDING_SCORE")
    await repo.upsert(USER, [pending, samples.sleep(start=T0 - timedelta(days=1))])
    assert await repo.keys_in_state(USER, "PENDING_SCORE") == [uuid.UUID(pending["id"])]


async def test_concurrent_writers_newest_always_wins_on_postgres(pg_engine: AsyncEngine) -> None:
    """Many writers race with different versions of one record; the newest must win every time."""
    user = uuid.uuid4()
    for _ in range(10):
        base = samples.sleep(start=T0, sleep_id=uuid.uuid4())
        versions = [
            {**base, "updated_at": samples.iso(T0 + timedelta(hours=9, minutes=m))}
            for m in range(12)
        ]
        newest = versions[-1]

        async def write(obj: dict[str, object]) -> None:
            async with AsyncSession(pg_engine) as s:
                await RecordRepository(s, DataType.SLEEP).upsert(user, [obj])
                await s.commit()

        await asyncio.gather(*(write(v) for v in reversed(versions)), *(write(v) for v in versions))
        async with AsyncSession(pg_engine) as s:
            assert await RecordRepository(s, DataType.SLEEP).get(uuid.UUID(base["id"])) == newest
    async with AsyncSession(pg_engine) as s:
        await RecordRepository(s, DataType.SLEEP).delete_all(user)
        await s.commit()


async def test_deleted_record_refuses_a_version_fetched_before_the_deletion(
    any_session: AsyncSession,
) -> None:
    repo = RecordRepository(any_session, DataType.SLEEP)
    obj = samples.sleep(start=T0)
    key = uuid.UUID(obj["id"])
    await repo.upsert(USER, [obj])
    assert await repo.delete(USER, key) == 1
    assert (await repo.upsert(USER, [obj])).results == {key: UpsertResult.UNCHANGED}
    assert await repo.get(key) is None


async def test_deletion_of_an_uncached_record_refuses_its_later_write(
    any_session: AsyncSession,
) -> None:
    repo = RecordRepository(any_session, DataType.WORKOUT)
    obj = samples.workout(start=T0)
    key = uuid.UUID(obj["id"])
    assert await repo.delete(USER, key) == 0
    assert (await repo.upsert(USER, [obj])).results == {key: UpsertResult.UNCHANGED}
    assert await repo.count(USER) == 0


async def test_version_updated_after_the_deletion_is_written(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.WORKOUT)
    obj = samples.workout(start=T0)
    key = uuid.UUID(obj["id"])
    await repo.delete(USER, key)
    later = {**obj, "updated_at": samples.iso(datetime.now(UTC) + timedelta(minutes=1))}
    assert (await repo.upsert(USER, [obj, later])).results == {key: UpsertResult.INSERTED}
    assert await repo.get(key) == later


async def test_deleted_sleep_takes_its_recovery_and_refuses_it_later(
    any_session: AsyncSession,
) -> None:
    recoveries = RecordRepository(any_session, DataType.RECOVERY)
    sleep_id = uuid.uuid4()
    recovery = samples.recovery(cycle_id=500, sleep_id=sleep_id, created_at=T0)
    await recoveries.upsert(USER, [recovery])
    assert await recoveries.delete_where(USER, "sleep_id", sleep_id) == 1
    assert (await recoveries.upsert(USER, [recovery])).results == {500: UpsertResult.UNCHANGED}
    assert await recoveries.get(500) is None


async def test_purge_refuses_versions_fetched_before_it(any_session: AsyncSession) -> None:
    repo = RecordRepository(any_session, DataType.CYCLE)
    objs = [samples.cycle(cycle_id=900 + i, start=T0 + timedelta(days=i)) for i in range(3)]
    await repo.upsert(USER, objs)
    assert await repo.delete_all(USER) == 3
    assert (await repo.upsert(USER, objs)).written == 0
    assert await repo.count(USER) == 0
    assert await repo.forget_deletions(USER) == 3
    assert (await repo.upsert(USER, objs)).written == 3


async def test_delete_committed_elsewhere_refuses_a_later_write_on_postgres(
    pg_engine: AsyncEngine,
) -> None:
    """The event job that fetched before the deletion writes in its own session, after it."""
    user = uuid.uuid4()
    obj = samples.sleep(start=T0, sleep_id=uuid.uuid4())
    key = uuid.UUID(obj["id"])
    async with AsyncSession(pg_engine) as deleter:
        await RecordRepository(deleter, DataType.SLEEP).delete(user, key)
        await deleter.commit()
    async with AsyncSession(pg_engine) as writer:
        summary = await RecordRepository(writer, DataType.SLEEP).upsert(user, [obj])
        await writer.commit()
    assert summary.results == {key: UpsertResult.UNCHANGED}
    async with AsyncSession(pg_engine) as s:
        assert await RecordRepository(s, DataType.SLEEP).get(key) is None
        await RecordRepository(s, DataType.SLEEP).forget_deletions(user)
        await s.commit()


async def test_a_404_for_an_uncached_record_leaves_no_tombstone(any_session: AsyncSession) -> None:
    """WHOOP answering 404 may mean "not yet": only a record that was cached is buried then."""
    repo = RecordRepository(any_session, DataType.SLEEP)
    cached, unseen = samples.sleep(start=T0), samples.sleep(start=T0 + timedelta(days=1))
    await repo.upsert(USER, [cached])
    for obj in (cached, unseen):
        await repo.delete(USER, uuid.UUID(obj["id"]), bury_absent=False)
    summary = await repo.upsert(USER, [cached, unseen])
    assert summary.results == {
        uuid.UUID(cached["id"]): UpsertResult.UNCHANGED,
        uuid.UUID(unseen["id"]): UpsertResult.INSERTED,
    }
