"""The read's quota economy, on both backends: a live webhook channel answers a read past the
threshold from the cache (`confirmed_by: webhooks`), `threshold` mode keeps the guide's rule, a
default refresh costs one WHOOP call, and a narrow read refreshes what it asked and confirms nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
import respx
from fastapi import FastAPI

from common.config import Settings
from common.types import DataType
from tests.services.api.channel import on_a_clear_inbox, stale_user, webhook_received
from tests.services.api.conftest import (
    auth,
    client_of,
    collection_body,
    each_backend,
    make_settings,
)

SLEEPS = "/developer/v2/activity/sleep"


settings = each_backend()


@pytest.fixture
async def app(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[FastAPI]:
    """The api in `webhooks` mode (the default) on the `backend` parameter."""
    async for (started,) in on_a_clear_inbox(settings):
        yield started


@pytest.fixture
async def threshold_app(
    database_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[FastAPI]:
    """The api in `threshold` mode on the `backend` parameter."""
    threshold = make_settings(database_url, redis_url, freshness="threshold")
    async for (started,) in on_a_clear_inbox(threshold):
        yield started


async def _backfilled_user(app: FastAPI, sleeps: int = 3) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """A user whose backfill is done and whose sleeps and cycles were last synced 3 h ago."""
    user, _, stored = await stale_user(app, sleeps, synced=(DataType.SLEEP, DataType.CYCLE))
    return user, stored


async def test_a_live_channel_answers_a_read_past_the_threshold_from_the_cache(
    app: FastAPI, whoop: respx.MockRouter
) -> None:
    user, _ = await _backfilled_user(app)
    received = await webhook_received(app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, []))
    async with client_of(app) as client:
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
    await webhook_received(app, timedelta(minutes=20))  # liveness is 15 minutes
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    async with client_of(app) as client:
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
    await webhook_received(threshold_app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    async with client_of(threshold_app) as client:
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
    async with client_of(threshold_app) as client:
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
    async with client_of(threshold_app) as client:
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
