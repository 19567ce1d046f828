"""WHOOPSYNC_DATABASE_POOLER=transaction: the engine works through a real PgBouncer in transaction
mode (a private one, two server connections, in front of the run's PostgreSQL), where the default
engine's named prepared statements break; the change feed and pushes keep their order through it."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.config import ConfigError, load_settings
from common.db.engine import create_engine
from common.db.models import WebhookEvent
from common.db.repositories import RecordRepository
from common.db.resilient import driver_call, run_once_more
from common.feed.cursor import decode
from common.queue import InProcessQueue
from common.sync.context import build_context
from common.sync.jobs import JOBS
from common.types import DataType
from tests.common.db import samples
from tests.common.feed.receiver import serve_receiver
from tests.common.sync.harness import make_settings
from tests.faults.pgbouncer import PgBouncer

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def bouncer() -> AsyncIterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the tests' PostgreSQL (127.0.0.1:5432)."""
    running = PgBouncer(5432, pool_size=2)
    await running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def pooled_url(bouncer: PgBouncer, pg_url: str) -> str:
    """The run's database through the bouncer."""
    return bouncer.url(pg_url.rsplit("/", 1)[1])


async def _busy(engine: AsyncEngine, clients: int = 8, rounds: int = 15) -> list[BaseException]:
    """Many clients at once, each an ORM query and a raw hot-path statement per round."""

    async def client(n: int) -> None:
        for i in range(rounds):
            async with engine.connect() as connection:
                await connection.scalar(select(func.count()).select_from(WebhookEvent))
                await connection.commit()

            async def raw(connection: Any, value: int = n + i) -> Any:
                return await driver_call(connection, "fetchval", "SELECT $1::int + 1", value)

            assert await run_once_more(engine, raw) == n + i + 1

    results = await asyncio.gather(*(client(n) for n in range(clients)), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def test_an_unknown_pooler_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOOPSYNC_DATABASE_POOLER", "session")
    with pytest.raises(ConfigError, match=r"^WHOOPSYNC_DATABASE_POOLER is malformed") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


async def test_the_default_engine_breaks_behind_a_transaction_pooler(pooled_url: str) -> None:
    """What the setting is for: named statements cached per client collide on shared servers."""
    engine = create_engine(pooled_url, pool_size=8)
    try:
        errors = await _busy(engine)
    finally:
        await engine.dispose()
    assert errors
    assert any("prepared statement" in str(e) for e in errors), errors[:3]


async def test_the_pooled_engine_works_behind_a_transaction_pooler(pooled_url: str) -> None:
    engine = create_engine(pooled_url, pooler="transaction", pool_size=8)
    try:
        errors = await _busy(engine)
    finally:
        await engine.dispose()
    assert errors == []


async def test_changes_are_numbered_and_pushed_in_order_through_the_pooler(
    pooled_url: str,
) -> None:
    async with serve_receiver() as receiver:
        settings = make_settings(
            pooled_url,
            None,
            "http://127.0.0.1:9",
            database_pooler="transaction",
            app_webhook_url=receiver.url,
            app_webhook_secret=SECRET,
        )
        sync = await build_context(settings)
        queue = InProcessQueue(JOBS, {"sync": sync})
        sync.feed.use_queue(queue)
        queue.start()
        users = [uuid.uuid4() for _ in range(4)]
        try:

            async def writes(n: int, user: uuid.UUID) -> None:
                for i in range(5):
                    obj = samples.workout(start=T0 + timedelta(hours=i), whoop_user_id=500 + n)
                    async with sync.session_factory() as session:
                        await RecordRepository(session, DataType.WORKOUT).upsert(user, [obj])
                        await session.commit()

            await asyncio.gather(*(writes(n, u) for n, u in enumerate(users)))
            pushes = await receiver.wait_for(20)
        finally:
            await queue.close()
            await sync.close()
    bodies = [orjson.loads(p.body) for p in pushes]
    for user in users:
        cursors = [decode(b["cursor"]) for b in bodies if b["user_id"] == str(user)]
        assert len(cursors) == 5
        assert cursors == sorted(cursors)
