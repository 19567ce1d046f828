"""The read's quota economy, on both backends: a live webhook channel answers a read past the
threshold from the cache (`confirmed_by: webhooks`), `threshold` mode keeps the guide's rule, a
default refresh costs one WHOOP call, and a narrow read refreshes what it asked and confirms nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from fastapi import FastAPI
from sqlalchemy import delete, update

from common.db.models import ChannelState, WebhookEvent, WhoopConnection
from common.types import DataType
from tests.services.api.conftest import (
    auth,
    collection_body,
    connect_user,
    make_settings,
    mark_synced,
    objects,
    running,
    seed,
    state_of,
)

SLEEPS = "/developer/v2/activity/sleep"


async def _app(
    backend: str, pg_url: str, sqlite_url: str, redis_url: str, **overrides: Any
) -> AsyncIterator[FastAPI]:
    url = pg_url if backend == "postgresql" else sqlite_url
    async for started in running(make_settings(url, redis_url, **overrides)):
        async with state_of(started).session_factory() as session:
            await session.execute(delete(WebhookEvent))
            await session.execute(delete(ChannelState))
            await session.commit()
        yield started
        async with state_of(started).session_factory() as session:
            await session.execute(delete(WebhookEvent))
            await session.commit()


@pytest.fixture
async def app(
    backend: str, pg_url: str, sqlite_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[FastAPI]:
    """The api in `webhooks` mode (the default) on the `backend` parameter."""
    async for started in _app(backend, pg_url, sqlite_url, redis_url):
        yield started


@pytest.fixture
async def threshold_app(
    backend: str, pg_url: str, sqlite_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[FastAPI]:
    """The api in `threshold` mode on the `backend` parameter."""
    async for started in _app(backend, pg_url, sqlite_url, redis_url, freshness="threshold"):
        yield started


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


async def _backfilled_user(app: FastAPI, sleeps: int = 3) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """A user whose backfill is done and whose sleeps were last synced 3 h ago (past 2 h)."""
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.SLEEP, whoop_user, sleeps)
    await seed(app, user, DataType.SLEEP, stored)
    await mark_synced(app, user, DataType.SLEEP, timedelta(hours=3))
    await mark_synced(app, user, DataType.CYCLE, timedelta(hours=3))
    async with state_of(app).session_factory() as session:
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user)
            .values(backfill_pending_since=None)
        )
        await session.commit()
    return user, stored


async def _webhook_received(app: FastAPI, ago: timedelta = timedelta(minutes=2)) -> datetime:
    """A verified event recorded and processed `ago` (any user's keeps the channel live)."""
    at = datetime.now(UTC) - ago
    async with state_of(app).session_factory() as session:
        session.add(
            WebhookEvent(
                trace_id=str(uuid.uuid4()),
                event_type="workout.updated",
                whoop_user_id=77,
                record_id=str(uuid.uuid4()),
                payload="{}",
                status="done",
                attempts=1,
                received_at=at,
            )
        )
        await session.commit()
    return at


async def test_a_live_channel_answers_a_read_past_the_threshold_from_the_cache(
    app: FastAPI, whoop: respx.MockRouter
) -> None:
    user, _ = await _backfilled_user(app)
    received = await _webhook_received(app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, []))
    async with await _client(app) as client:
        read = await client.get("/api/v1/smart/sleep", headers=auth(user))
        status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    assert read.status_code == 200
    assert read.json()["metadata"]["source"] == "cache"
    assert read.json()["metadata"]["record_count"] == 3
    assert route.call_count == 0
    body = status.json()
    assert body["webhook_channel"]["live"] is True
    assert datetime.fromisoformat(body["webhook_channel"]["last_event_at"]) == received
    sleep = body["sync_status"]["sleep"]
    assert sleep["confirmed_by"] == "webhooks"
    assert sleep["needs_sync"] is False
    assert datetime.fromisoformat(sleep["last_sync_at"]) == received
    cycle = body["sync_status"]["cycle"]  # cycles: only syncs confirm them
    assert (cycle["confirmed_by"], cycle["needs_sync"]) == ("sync", True)


async def test_a_quiet_channel_brings_the_threshold_back(
    app: FastAPI, whoop: respx.MockRouter
) -> None:
    user, stored = await _backfilled_user(app)
    await _webhook_received(app, timedelta(minutes=20))  # liveness is 15 minutes
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    async with await _client(app) as client:
        read = await client.get("/api/v1/smart/sleep", headers=auth(user))
        status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    assert read.json()["metadata"]["source"] == "whoop_api"
    assert route.call_count == 1
    assert status.json()["webhook_channel"]["live"] is False
    assert status.json()["sync_status"]["sleep"]["confirmed_by"] == "sync"


async def test_threshold_mode_fetches_past_the_threshold_as_the_guide_does(
    threshold_app: FastAPI, whoop: respx.MockRouter
) -> None:
    user, stored = await _backfilled_user(threshold_app)
    await _webhook_received(threshold_app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    async with await _client(threshold_app) as client:
        read = await client.get("/api/v1/smart/sleep", headers=auth(user))
        status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    assert read.json()["metadata"]["source"] == "whoop_api"
    assert route.call_count == 1
    assert status.json()["webhook_channel"]["live"] is False
    assert status.json()["sync_status"]["sleep"]["confirmed_by"] == "sync"


@pytest.mark.parametrize("limit", [30, 100])
async def test_a_default_refresh_costs_one_whoop_call(
    threshold_app: FastAPI, whoop: respx.MockRouter, limit: int
) -> None:
    user, stored = await _backfilled_user(threshold_app, sleeps=40)
    newest = {**collection_body(DataType.SLEEP, stored[:25]), "next_token": "more"}
    route = whoop.get(SLEEPS).respond(json=newest)
    async with await _client(threshold_app) as client:
        read = await client.get(f"/api/v1/smart/sleep?limit={limit}", headers=auth(user))
        status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    assert read.json()["metadata"]["source"] == "whoop_api"
    assert read.json()["metadata"]["record_count"] == min(limit, 40)  # the rest from the cache
    assert route.call_count == 1
    assert route.calls[0].request.url.params["limit"] == "25"
    sleep = status.json()["sync_status"]["sleep"]
    assert (sleep["needs_sync"], sleep["confirmed_by"]) == (False, "sync")


@pytest.mark.parametrize(
    "query",
    ["limit=1", "start=2025-11-01T00:00:00Z&end=2025-11-10T00:00:00Z"],
    ids=["small_limit", "old_window"],
)
async def test_a_narrow_read_refreshes_what_it_asked_and_confirms_nothing(
    threshold_app: FastAPI, whoop: respx.MockRouter, query: str
) -> None:
    user, stored = await _backfilled_user(threshold_app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored[:1]))
    async with await _client(threshold_app) as client:
        narrow = await client.get(f"/api/v1/smart/sleep?{query}", headers=auth(user))
        status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
        default = await client.get("/api/v1/smart/sleep", headers=auth(user))
    assert narrow.json()["metadata"]["source"] == "whoop_api"
    sleep = status.json()["sync_status"]["sleep"]
    assert sleep["needs_sync"] is True  # still 3 h since the newest records were confirmed
    assert sleep["time_since_sync_seconds"] >= 3 * 3600
    assert sleep["last_fetch_at"] is not None
    assert datetime.fromisoformat(sleep["last_fetch_at"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert default.json()["metadata"]["source"] == "whoop_api"  # the next default read refreshes
    assert route.call_count == 2
