"""Deletes in order (SPEC §4), on both backends against real commits: a `*.deleted` of a record
never cached and a concurrent upsert of a version fetched before the deletion cannot both win,
whichever starts first. The review's interleaving: the upsert's transaction is open (its row
written, not committed) when the delete's starts, and the other way round."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select

from common.config import Settings
from common.db.models import ChangeOutbox, SleepTombstone
from common.db.repositories import RecordRepository
from common.db.types import utcnow
from common.sync.accounts import EncryptedTokens, link_account
from common.sync.results import Writes
from common.sync.service import SyncService
from common.types import DataType, UpsertResult
from tests.common.db import samples
from tests.common.sync.connections import Factory

TOKENS = EncryptedTokens("access", "refresh", utcnow() + timedelta(hours=1), "offline")
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
# Long enough for a writer that does not wait to have written and committed.
SETTLE_SECONDS = 0.5


def _service(session: Any) -> SyncService:
    return SyncService(session, cast(Any, None), cast(Any, None), cast(Settings, None))


async def _member(factory: Factory) -> tuple[uuid.UUID, int]:
    user, whoop_user = uuid.uuid4(), uuid.uuid4().int % 10**12
    async with factory() as session:
        await link_account(session, user, whoop_user, TOKENS, may_move=False)
        await session.commit()
    return user, whoop_user


def _upsert(sleep: dict[str, Any]) -> Writes:
    writes = Writes()
    writes.upsert(DataType.SLEEP, sleep)
    return writes


def _deleted(sleep_id: uuid.UUID) -> Writes:
    """What `sleep.deleted` writes: the sleep and its recovery removed, tombstones left."""
    writes = Writes()
    writes.delete(DataType.SLEEP, "id", sleep_id)
    writes.delete(DataType.RECOVERY, "sleep_id", sleep_id)
    return writes


async def _apply(factory: Factory, user: uuid.UUID, account: int, writes: Writes) -> None:
    async with factory() as session:
        await _service(session).apply(user, writes, account=account)
        await session.commit()


async def _state(factory: Factory, user: uuid.UUID, sleep_id: uuid.UUID) -> tuple[bool, bool]:
    """(the row is cached, a tombstone is kept)."""
    async with factory() as session:
        row = await RecordRepository(session, DataType.SLEEP).get(sleep_id)
        buried = await session.scalar(
            select(func.count()).where(
                SleepTombstone.id == sleep_id, SleepTombstone.user_id == user
            )
        )
    return row is not None, bool(buried)


async def _last_change(factory: Factory, sleep_id: uuid.UUID) -> str:
    async with factory() as session:
        actions = await session.scalars(
            select(ChangeOutbox.action)
            .where(ChangeOutbox.record_id == str(sleep_id))
            .order_by(ChangeOutbox.id)
        )
        found = list(actions)
    return found[-1] if found else ""


async def test_a_delete_waits_for_an_upsert_under_way_and_removes_its_row(
    factory: Factory,
) -> None:
    user, account = await _member(factory)
    sleep = samples.sleep(start=T0, whoop_user_id=account)  # fetched before the deletion
    sleep_id = uuid.UUID(sleep["id"])
    async with factory() as session:
        await _service(session).apply(user, _upsert(sleep), account=account)
        delete = asyncio.create_task(_apply(factory, user, account, _deleted(sleep_id)))
        await asyncio.sleep(SETTLE_SECONDS)
        assert not delete.done()  # the delete waits for the upsert's hold of the account
        await session.commit()
    await delete
    assert await _state(factory, user, sleep_id) == (False, True)
    assert await _last_change(factory, sleep_id) == "deleted"


async def test_an_upsert_waits_for_a_delete_under_way_and_writes_nothing(
    factory: Factory,
) -> None:
    user, account = await _member(factory)
    sleep = samples.sleep(start=T0, whoop_user_id=account)  # never cached
    sleep_id = uuid.UUID(sleep["id"])
    async with factory() as session:
        await _service(session).apply(user, _deleted(sleep_id), account=account)
        upsert = asyncio.create_task(_apply(factory, user, account, _upsert(sleep)))
        await asyncio.sleep(SETTLE_SECONDS)
        assert not upsert.done()  # the upsert waits for the delete's exclusive hold
        await session.commit()
    await upsert
    assert await _state(factory, user, sleep_id) == (False, True)
    assert await _last_change(factory, sleep_id) == ""  # never upserted, nothing to delete


async def test_a_write_waiting_on_the_deletion_of_a_cached_record_does_not_bring_it_back(
    factory: Factory,
) -> None:
    """The writer's upsert of a version fetched before the deletion starts while the deletion is
    uncommitted (on PostgreSQL it used to wait on the row, then insert it afresh)."""
    user, account = await _member(factory)
    sleep = samples.sleep(start=T0, whoop_user_id=account)
    sleep_id = uuid.UUID(sleep["id"])
    await _apply(factory, user, account, _upsert(sleep))
    fetched_before_the_deletion = {**sleep, "updated_at": samples.iso(T0 + timedelta(hours=20))}
    async with factory() as session:
        await _service(session).apply(user, _deleted(sleep_id), account=account)
        write = asyncio.create_task(_written(factory, user, account, fetched_before_the_deletion))
        await asyncio.sleep(SETTLE_SECONDS)
        assert not write.done()
        await session.commit()
    assert await write == UpsertResult.UNCHANGED
    assert await _state(factory, user, sleep_id) == (False, True)


async def _written(
    factory: Factory, user: uuid.UUID, account: int, sleep: dict[str, Any]
) -> UpsertResult:
    async with factory() as session:
        written = await _service(session).apply(user, _upsert(sleep), account=account)
        await session.commit()
    return written.summaries[DataType.SLEEP].results[uuid.UUID(sleep["id"])]


async def test_a_version_newer_than_the_deletion_is_written_after_it(factory: Factory) -> None:
    user, account = await _member(factory)
    sleep_id = uuid.uuid4()
    await _apply(factory, user, account, _deleted(sleep_id))
    later = samples.sleep(
        start=T0, sleep_id=sleep_id, whoop_user_id=account, updated_at=utcnow() + timedelta(hours=1)
    )
    await _apply(factory, user, account, _upsert(later))
    assert (await _state(factory, user, sleep_id))[0]
