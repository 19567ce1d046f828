"""Ownership in the write (SPEC §4), on both backends against real commits: a fetch that resolved
the old holder before the account moved, switched away or was erased never writes to that user;
the records go to whoever holds the account when the write commits, or nowhere."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select

from common.config import Settings
from common.db.models import Change, ChangeOutbox, SyncAttempt, SyncLog
from common.db.repositories import ConnectionRepository, RecordRepository
from common.db.types import utcnow
from common.sync.accounts import EncryptedTokens, link_account
from common.sync.erase import erase_user
from common.sync.service import SyncService
from common.types import DataType, SyncStatus, Trigger
from tests.common.db import samples
from tests.common.sync.connections import Factory

TOKENS = EncryptedTokens("access", "refresh", utcnow() + timedelta(hours=1), "offline")
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def service(session: Any) -> SyncService:
    """A sync service for writes only (no WHOOP call is made)."""
    return SyncService(session, cast(Any, None), cast(Any, None), cast(Settings, None))


async def _link(factory: Factory, user: uuid.UUID, whoop_user: int, *, may_move: bool) -> None:
    async with factory() as session:
        await link_account(session, user, whoop_user, TOKENS, may_move=may_move)
        await session.commit()


async def _owned(factory: Factory, user: uuid.UUID) -> dict[str, int]:
    """How many records, outbox or feed changes, and sync-log rows the user has."""
    async with factory() as session:
        records = sum([await RecordRepository(session, t).count(user) for t in DataType])
        counts = {"records": records}
        for name, model in (
            ("changes", Change),
            ("outbox", ChangeOutbox),
            ("sync_log", SyncLog),
            ("attempts", SyncAttempt),
        ):
            counts[name] = int(
                await session.scalar(select(func.count()).where(model.user_id == user)) or 0
            )
    return counts


async def _write(factory: Factory, fetched_for: uuid.UUID, objs: list[dict[str, Any]]) -> None:
    """What a job does after its fetch: the upsert and the attempt, in one commit."""
    async with factory() as session:
        sync = service(session)
        await sync.write(fetched_for, DataType.SLEEP, objs)
        await sync.record(
            fetched_for,
            DataType.SLEEP,
            Trigger.WEBHOOK,
            SyncStatus.SUCCESS,
            1,
            utcnow(),
            time.monotonic(),
        )
        await session.commit()


async def test_a_fetch_for_the_old_holder_writes_to_the_user_holding_the_account_now(
    factory: Factory,
) -> None:
    old, new, whoop_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().int % 10**12
    await _link(factory, old, whoop_user, may_move=False)
    fetched = [samples.sleep(start=T0, whoop_user_id=whoop_user)]  # resolved `old`, then fetched
    await _link(factory, new, whoop_user, may_move=True)  # the POST callback moves the account

    await _write(factory, old, fetched)

    assert (await _owned(factory, old))["records"] == 0
    assert (await _owned(factory, old))["attempts"] == 0
    assert (await _owned(factory, new))["records"] == 1  # not lost to the new owner


async def test_a_move_waits_for_a_write_under_way_and_takes_its_records(
    factory: Factory,
) -> None:
    old, new, whoop_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().int % 10**12
    await _link(factory, old, whoop_user, may_move=False)
    async with factory() as session:
        await service(session).write(
            old, DataType.SLEEP, [samples.sleep(start=T0, whoop_user_id=whoop_user)]
        )
        move = asyncio.create_task(_link(factory, new, whoop_user, may_move=True))
        await asyncio.sleep(0.3)
        assert not move.done()  # the move waits on the write's hold of the connection
        await session.commit()
    await move
    assert (await _owned(factory, old))["records"] == 0
    assert (await _owned(factory, new))["records"] == 1


async def test_a_switch_to_another_account_stops_writes_of_the_old_one(
    factory: Factory,
) -> None:
    user, first, second = uuid.uuid4(), uuid.uuid4().int % 10**12, uuid.uuid4().int % 10**12
    await _link(factory, user, first, may_move=False)
    fetched = [samples.sleep(start=T0, whoop_user_id=first)]
    await _link(factory, user, second, may_move=False)

    await _write(factory, user, fetched)

    assert (await _owned(factory, user))["records"] == 0


async def test_a_job_in_flight_when_the_erase_commits_writes_nothing(factory: Factory) -> None:
    user, whoop_user = uuid.uuid4(), uuid.uuid4().int % 10**12
    await _link(factory, user, whoop_user, may_move=False)
    fetched = [samples.sleep(start=T0, whoop_user_id=whoop_user)]

    async def revoke(_: uuid.UUID) -> bool:
        return True

    async with factory() as session:
        await erase_user(session, user, revoke=revoke)
        await session.commit()
    await _write(factory, user, fetched)

    owned = await _owned(factory, user)
    assert owned == {"records": 0, "changes": 0, "outbox": 1, "sync_log": 0, "attempts": 0} or (
        owned == {"records": 0, "changes": 1, "outbox": 0, "sync_log": 0, "attempts": 0}
    )  # only the `user.erased` change, numbered or not yet
    async with factory() as session:
        assert await ConnectionRepository(session).by_whoop_user(whoop_user) is None
