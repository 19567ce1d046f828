"""link_account on both backends, against real commits: a writer that commits while a link is
under way (another user's backfill) never makes the link fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from common.db.repositories import ConnectionRepository, RecordRepository
from common.db.repositories.connections import ConnectionRepository as Connections
from common.db.types import utcnow
from common.sync.accounts import EncryptedTokens, link_account
from common.types import DataType
from tests.common.db import samples
from tests.common.sync.connections import Factory

TOKENS = EncryptedTokens("access", "refresh", utcnow() + timedelta(hours=1), "offline")


async def test_a_writer_committing_during_a_link_does_not_fail_it(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, whoop_user, other = uuid.uuid4(), uuid.uuid4().int % 10**12, uuid.uuid4()
    written: list[asyncio.Task[None]] = []

    async def backfill_of_another_user() -> None:
        async with factory() as session:
            cycle = samples.cycle(
                cycle_id=uuid.uuid4().int % 10**12, start=utcnow(), whoop_user_id=7
            )
            await RecordRepository(session, DataType.CYCLE).upsert(other, [cycle])
            await session.commit()

    original: Callable[..., Awaitable[object]] = Connections.by_whoop_user

    async def read_while_another_writes(self: Connections, whoop_user_id: int) -> object:
        found = await original(self, whoop_user_id)
        written.append(asyncio.create_task(backfill_of_another_user()))
        await asyncio.sleep(0.2)  # it commits now, unless this transaction holds the lock
        return found

    monkeypatch.setattr(Connections, "by_whoop_user", read_while_another_writes)
    async with factory() as session:
        await link_account(session, user, whoop_user, TOKENS, may_move=False)
        await session.commit()
    await asyncio.gather(*written)

    async with factory() as session:
        row = await ConnectionRepository(session).get(user)
        assert await RecordRepository(session, DataType.CYCLE).count(other) == 1
    assert row is not None
    assert row.whoop_user_id == whoop_user
