"""Numbering: a commit that recorded a change drains by itself, and concurrent writers never
produce a change that a cursor reader skips."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common.config import Settings
from common.db.engine import create_engine, create_lookup_factory, create_session_factory
from common.db.repositories import RecordRepository
from common.db.repositories.changes import ChangeRepository
from common.feed.feed import ChangeFeed
from common.types import DataType
from tests.common.db import samples

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
WRITERS, WRITES = 24, 15


@pytest.fixture
async def engine(backend: str, pg_url: str, sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url if backend == "postgresql" else sqlite_url)
    yield engine
    await engine.dispose()


async def test_a_commit_that_recorded_a_change_numbers_it_and_wakes_readers(
    engine: AsyncEngine,
) -> None:
    factory = create_session_factory(engine)
    feed = ChangeFeed(Settings(database_url=str(engine.url)), factory)
    user = uuid.uuid4()
    try:
        with feed.notifier.subscribe(user) as woken:
            async with factory() as session:
                await RecordRepository(session, DataType.WORKOUT).upsert(
                    user, [samples.workout(start=T0)]
                )
                await session.commit()
            await asyncio.wait_for(woken.wait(), timeout=30)
        async with factory() as session:
            changes = await ChangeRepository(session).page(user, 0, 10)
        assert [c.action for c in changes] == ["upserted"]
    finally:
        await feed.aclose()


async def test_a_rolled_back_write_records_no_change(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    user = uuid.uuid4()
    async with factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(user, [samples.workout(start=T0)])
        await session.rollback()
    async with factory() as session:
        await ChangeRepository(session).drain()
        await session.commit()
        assert await ChangeRepository(session).page(user, 0, 10) == []


@pytest.mark.parametrize("drains", ["in a transaction", "in autocommit"])
async def test_concurrent_writers_never_produce_a_change_a_reader_skips(
    pg_url: str, drains: str
) -> None:
    """The drain is one statement on PostgreSQL: in a transaction, and in autocommit (the
    drainer's sessions), where the statement is the transaction holding the lock."""
    engine = create_engine(pg_url, pool_size=30)
    factory = create_session_factory(engine)
    draining = factory if drains == "in a transaction" else create_lookup_factory(engine)
    user = uuid.uuid4()
    done = asyncio.Event()

    async def writer(n: int) -> None:
        for i in range(WRITES):
            async with factory() as session:
                workout = samples.workout(start=T0 + timedelta(minutes=n * 100 + i))
                await RecordRepository(session, DataType.WORKOUT).upsert(user, [workout])
                # Hold the transaction open a random while so that commits interleave.
                await asyncio.sleep(random.uniform(0, 0.01))
                await session.commit()
            async with draining() as session:
                await ChangeRepository(session).drain(batch=random.randint(1, 5))
                await session.commit()

    async def reader() -> list[int]:
        seen: list[int] = []
        after = 0
        while True:
            finished = done.is_set()
            async with factory() as session:
                repo = ChangeRepository(session)
                page = await repo.page(user, after, 7, upto=await repo.head())
            seen += [c.seq for c in page]
            after = page[-1].seq if page else after
            if finished and not page:
                return seen
            await asyncio.sleep(0)

    try:
        reading = asyncio.create_task(reader())
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        async with factory() as session:
            while await ChangeRepository(session).drain():
                await session.commit()
            await session.commit()
        done.set()
        seen = await reading
        async with factory() as session:
            every = [c.seq for c in await ChangeRepository(session).page(user, 0, 10_000)]
        assert len(every) == WRITERS * WRITES
        assert seen == every
    finally:
        await engine.dispose()
