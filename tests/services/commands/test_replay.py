"""`whoop-sync replay`: its options, and that it reopens every matching event with its tries reset
(a replay run end to end is in tests/services/worker/test_jobs.py)."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, func, insert, select

from common.config import Settings
from common.db.engine import create_engine
from common.db.models import WebhookEvent
from common.types import EventStatus
from services.cli import build_parser
from services.commands.replay import parse_since, replay


def test_since_accepts_an_age() -> None:
    moment = parse_since("2h")
    assert abs((datetime.now(UTC) - timedelta(hours=2) - moment).total_seconds()) < 5


def test_since_accepts_iso_8601_and_reads_a_naive_time_as_utc() -> None:
    assert parse_since("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("2026-01-02T03:04:05+01:00").utcoffset() == timedelta(hours=1)


def test_since_refuses_anything_else() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday")


def test_status_must_be_an_event_status() -> None:
    args = build_parser("replay").parse_args(["replay", "--status", "failed", "--since", "30m"])
    assert args.status == "failed"
    with pytest.raises(SystemExit):
        build_parser("replay").parse_args(["replay", "--status", "lost"])


@pytest.fixture
async def database_url(backend: str, pg_url: str, sqlite_url: str) -> AsyncIterator[str]:
    """The backend's test database, its webhook inbox emptied before and after (a replay takes
    every matching event, another test's too)."""
    url = pg_url if backend == "postgresql" else sqlite_url
    await _empty_inbox(url)
    yield url
    await _empty_inbox(url)


async def _empty_inbox(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(delete(WebhookEvent))
    await engine.dispose()


async def _poisoned_events(url: str, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "trace_id": f"replay-{n}",
            "event_type": "sleep.updated",
            "whoop_user_id": 1,
            "record_id": str(uuid.UUID(int=n)),
            "payload": "{}",
            "status": EventStatus.FAILED.value,
            "attempts": 24,
            "last_error": "WHOOP 503",
            "received_at": now - timedelta(hours=1),
            "processed_at": now,
        }
        for n in range(count)
    ]
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(insert(WebhookEvent), rows)
    await engine.dispose()


async def test_replay_reopens_every_event_past_ten_thousand_with_tries_reset(
    database_url: str,
) -> None:
    await _poisoned_events(database_url, 10_050)
    settings = Settings(database_url=database_url, redis_url=None)
    assert await replay(settings, since=None, status=EventStatus.FAILED) == (10_050, 0)
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        left = await conn.execute(
            select(WebhookEvent.status, WebhookEvent.attempts, func.count()).group_by(
                WebhookEvent.status, WebhookEvent.attempts
            )
        )
        assert left.all() == [(EventStatus.PENDING.value, 0, 10_050)]
    await engine.dispose()


async def test_replay_enqueues_page_by_page_and_says_how_many(
    database_url: str, redis_url: str, redis: Redis
) -> None:
    await _poisoned_events(database_url, 5)
    settings = Settings(database_url=database_url, redis_url=redis_url)
    assert await replay(settings, since=None, status=None, page_size=2) == (5, 5)
    assert await redis.zcard("arq:queue") == 5
