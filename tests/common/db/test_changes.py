"""Every write that changes what a read returns records exactly one change; numbering, pages and
retention, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import Change, RecoveryTombstone, SleepTombstone, WorkoutTombstone
from common.db.repositories import RecordRepository
from common.db.repositories.changes import ChangeRepository
from common.types import DataType
from tests.common.db import samples

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def _drained(session: AsyncSession, user: uuid.UUID, after: int = 0) -> list[Change]:
    await ChangeRepository(session).drain()
    return await ChangeRepository(session).page(user, after, 1000)


def _actions(changes: list[Change]) -> list[tuple[str | None, str, str | None]]:
    return [(c.data_type, c.action, c.record_id) for c in changes]


async def test_insert_update_and_delete_each_record_one_change(any_session: AsyncSession) -> None:
    user = uuid.uuid4()
    repo = RecordRepository(any_session, DataType.SLEEP)
    obj = samples.sleep(start=T0)
    await repo.upsert(user, [obj])
    newer = {
        **obj,
        "updated_at": samples.iso(T0 + timedelta(hours=10)),
        "score_state": "PENDING_SCORE",
    }
    await repo.upsert(user, [newer])
    await repo.delete(user, uuid.UUID(obj["id"]))
    changes = await _drained(any_session, user)
    assert _actions(changes) == [
        ("sleep", "upserted", obj["id"]),
        ("sleep", "upserted", obj["id"]),
        ("sleep", "deleted", obj["id"]),
    ]
    assert changes[0].data is not None
    assert '"SCORED"' in changes[0].data
    assert changes[1].data is not None
    assert '"PENDING_SCORE"' in changes[1].data
    assert changes[1].updated_at == T0 + timedelta(hours=10)
    assert changes[2].data is None
    tombstone = await any_session.get(SleepTombstone, uuid.UUID(obj["id"]))
    assert tombstone is not None
    assert changes[2].updated_at == tombstone.deleted_at
    assert changes[0].seq < changes[1].seq < changes[2].seq


async def test_every_deleted_change_carries_its_tombstones_time(any_session: AsyncSession) -> None:
    user = uuid.uuid4()
    sleeps = RecordRepository(any_session, DataType.SLEEP)
    recoveries = RecordRepository(any_session, DataType.RECOVERY)
    workouts = RecordRepository(any_session, DataType.WORKOUT)
    sleep = samples.sleep(start=T0)
    await sleeps.upsert(user, [sleep])
    await recoveries.upsert(
        user,
        [
            samples.recovery(
                cycle_id=int(sleep["cycle_id"]), sleep_id=uuid.UUID(sleep["id"]), created_at=T0
            )
        ],
    )
    await workouts.upsert(
        user, [samples.workout(start=T0 + timedelta(hours=9 * i)) for i in (1, 2)]
    )
    before = await _drained(any_session, user)
    # A sleep's deletion takes its recovery along (delete_where); a purge takes the rest.
    await recoveries.delete_where(user, "sleep_id", uuid.UUID(sleep["id"]))
    await sleeps.delete(user, uuid.UUID(sleep["id"]))
    await workouts.delete_all(user)
    deleted = await _drained(any_session, user, before[-1].seq)
    assert sorted(str(c.data_type) for c in deleted) == ["recovery", "sleep", "workout", "workout"]
    tombstones: dict[str, Any] = {
        "recovery": RecoveryTombstone,
        "sleep": SleepTombstone,
        "workout": WorkoutTombstone,
    }
    for change in deleted:
        assert change.action == "deleted"
        assert change.updated_at is not None
        assert change.data_type is not None
        assert change.record_id is not None
        key = sleep["id"] if change.data_type == "recovery" else change.record_id
        tombstone = await any_session.get(tombstones[change.data_type], uuid.UUID(key))
        assert tombstone is not None
        assert change.updated_at == tombstone.deleted_at


async def test_unchanged_upserts_and_deletes_of_nothing_record_no_change(
    any_session: AsyncSession,
) -> None:
    user = uuid.uuid4()
    repo = RecordRepository(any_session, DataType.WORKOUT)
    obj = samples.workout(start=T0)
    await repo.upsert(user, [obj])
    before = await _drained(any_session, user)
    assert len(before) == 1
    await repo.upsert(user, [obj])  # equal updated_at: unchanged
    older = {**obj, "updated_at": samples.iso(T0 - timedelta(days=1))}
    await repo.upsert(user, [older])  # older: unchanged
    await repo.delete(user, uuid.uuid4())  # nothing there
    await repo.delete(uuid.uuid4(), uuid.UUID(obj["id"]))  # another user's key
    assert await _drained(any_session, user, before[-1].seq) == []


async def test_one_upsert_of_many_records_one_change_per_record_written(
    any_session: AsyncSession,
) -> None:
    user = uuid.uuid4()
    base = random.randrange(10**9, 2 * 10**9)
    repo = RecordRepository(any_session, DataType.CYCLE)
    first = [samples.cycle(cycle_id=base + i, start=T0 - timedelta(days=i)) for i in range(3)]
    await repo.upsert(user, first)
    newer = {**first[1], "updated_at": samples.iso(T0 + timedelta(days=2))}
    await repo.upsert(user, [first[0], newer, first[2]])
    changes = await _drained(any_session, user)
    assert sorted(str(c.record_id) for c in changes[:3]) == sorted(str(base + i) for i in range(3))
    assert _actions(changes[3:]) == [("cycle", "upserted", str(base + 1))]


async def test_sleep_delete_with_its_recovery_and_purge_record_each_deleted_record(
    any_session: AsyncSession,
) -> None:
    user = uuid.uuid4()
    cycle_id = random.randrange(10**9, 2 * 10**9)
    sleep = samples.sleep(start=T0, cycle_id=cycle_id)
    recovery = samples.recovery(cycle_id=cycle_id, sleep_id=uuid.UUID(sleep["id"]), created_at=T0)
    workouts = [samples.workout(start=T0 + timedelta(hours=h)) for h in (1, 2)]
    await RecordRepository(any_session, DataType.SLEEP).upsert(user, [sleep])
    await RecordRepository(any_session, DataType.RECOVERY).upsert(user, [recovery])
    await RecordRepository(any_session, DataType.WORKOUT).upsert(user, workouts)
    seen = (await _drained(any_session, user))[-1].seq
    await RecordRepository(any_session, DataType.SLEEP).delete(user, uuid.UUID(sleep["id"]))
    await RecordRepository(any_session, DataType.RECOVERY).delete_where(
        user, "sleep_id", uuid.UUID(sleep["id"])
    )
    assert await RecordRepository(any_session, DataType.WORKOUT).delete_all(user) == 2
    changes = await _drained(any_session, user, seen)
    assert _actions(changes[:2]) == [
        ("sleep", "deleted", sleep["id"]),
        ("recovery", "deleted", str(cycle_id)),
    ]
    assert sorted(_actions(changes[2:])) == sorted(
        ("workout", "deleted", w["id"]) for w in workouts
    )
    assert all(c.whoop_user_id == 10129 for c in changes)


async def test_changes_are_the_users_own(any_session: AsyncSession) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    workouts = RecordRepository(any_session, DataType.WORKOUT)
    await workouts.upsert(alice, [samples.workout(start=T0)])
    await workouts.upsert(bob, [samples.workout(start=T0)])
    assert len(await _drained(any_session, alice)) == 1
    assert len(await ChangeRepository(any_session).page(bob, 0, 100)) == 1


async def test_prune_deletes_old_changes_and_moves_the_horizon(any_session: AsyncSession) -> None:
    user = uuid.uuid4()
    repo = RecordRepository(any_session, DataType.WORKOUT)
    two = [samples.workout(start=T0), samples.workout(start=T0 + timedelta(hours=3))]
    await repo.upsert(user, two)
    old = await _drained(any_session, user)
    await repo.upsert(user, [samples.workout(start=T0 + timedelta(hours=6))])
    kept = (await _drained(any_session, user, old[-1].seq))[0]
    await any_session.execute(
        update(Change)
        .where(Change.seq.in_([c.seq for c in old]))
        .values(changed_at=datetime.now(UTC) - timedelta(days=40))
    )
    changes = ChangeRepository(any_session)
    assert await changes.prune_batch(datetime.now(UTC) - timedelta(days=30), 10_000) >= 2
    assert await changes.horizon() >= old[-1].seq
    assert await changes.horizon() < kept.seq
    assert [c.seq for c in await changes.page(user, 0, 100)] == [kept.seq]


async def test_an_account_move_is_a_delete_for_the_old_holder_and_an_upsert_for_the_new(
    any_session: AsyncSession,
) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    repo = RecordRepository(any_session, DataType.SLEEP)
    obj = samples.sleep(start=T0)
    await repo.upsert(old, [obj])
    before = await _drained(any_session, old)

    moved = await repo.reassign(int(obj["user_id"]), new)

    assert moved == 1
    assert _actions(await _drained(any_session, old, before[-1].seq)) == [
        ("sleep", "deleted", obj["id"])
    ]
    [upserted] = await _drained(any_session, new)
    assert (upserted.action, upserted.record_id) == ("upserted", obj["id"])
    assert upserted.data is not None
    assert obj["id"] in upserted.data
    assert await repo.reassign(int(obj["user_id"]), new) == 0  # nothing left to move
