"""The WHOOP budget spent where it counts (SPEC §3.1, §4, §4.1), on both backends with Redis: a
connection that needs reauthorization never looks fresh, one user's reads spend at most their
share while other users' reads and every webhook job go on, and past the day's forecast reads give
way to the versions WHOOP announces."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
import respx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from common.budget import budget_usage
from common.config import Settings
from common.db.repositories import ConnectionRepository, RecordRepository
from common.ratelimit import Priority
from common.sync.context import SyncContext
from common.types import ConnectionStatus, DataType, EventStatus
from tests.common.db import samples
from tests.services.api.channel import on_a_clear_inbox, stale_user, webhook_received
from tests.services.api.conftest import (
    auth,
    client_of,
    collection_body,
    each_backend,
    make_settings,
    state_of,
)

SLEEPS = "/developer/v2/activity/sleep"


settings = each_backend(user_refreshes_per_minute=2, whoop_rate_limit_per_day=10)


@pytest.fixture
async def app(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[FastAPI]:
    """One api, a share of two refreshes a minute and a day's budget of 10 calls."""
    async for (one,) in on_a_clear_inbox(settings):
        yield one


def _context(app: FastAPI) -> SyncContext:
    context: SyncContext = app.state.context
    return context


async def _webhook_job(
    app: FastAPI, whoop: respx.MockRouter, user: uuid.UUID, whoop_user: int
) -> tuple[EventStatus, int]:
    """A workout.updated job for the user, as the worker runs it; its outcome and WHOOP calls."""
    workout = samples.workout(start=datetime(2025, 11, 20, 7, tzinfo=UTC), whoop_user_id=whoop_user)
    route = whoop.get(f"/developer/v2/activity/workout/{workout['id']}").respond(json=workout)
    context = _context(app)
    async with context.session_factory() as session:
        outcome = await context.service(session).handle_event(
            "workout.updated", whoop_user, workout["id"], received_at=datetime.now(UTC)
        )
        await session.commit()  # the job commits its one write
    async with context.session_factory() as session:
        assert await RecordRepository(session, DataType.WORKOUT).get(uuid.UUID(workout["id"]))
    return outcome.status, route.call_count


@pytest.mark.parametrize(
    "status", [ConnectionStatus.REAUTHORIZATION_REQUIRED], ids=["reauthorization_required"]
)
async def test_a_connection_needing_reauthorization_never_looks_fresh(
    app: FastAPI, whoop: respx.MockRouter, status: ConnectionStatus
) -> None:
    user, _, _ = await stale_user(app)
    await webhook_received(app)
    async with state_of(app).session_factory() as session:
        await ConnectionRepository(session).set_status(user, status)
        await session.commit()
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, []))
    async with client_of(app) as client:
        read = await client.get("/api/v1/smart/sleep", headers=auth(user))
        sync_status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    body = read.json()
    assert (body["status"], body["metadata"]["source"]) == ("success_with_warning", "stale_cache")
    assert "WHOOP access must be renewed" in body["metadata"]["error"]
    assert body["metadata"]["record_count"] == 3
    assert route.call_count == 0
    status_body = sync_status.json()
    assert status_body["webhook_channel"]["live"] is True
    sleep = status_body["sync_status"]["sleep"]
    assert (sleep["needs_sync"], sleep["confirmed_by"]) == (True, "sync")
    assert sleep["sync_status"] == "reauthorization_required"


async def test_a_user_past_their_share_answers_from_the_cache_while_others_refresh(
    app: FastAPI, whoop: respx.MockRouter
) -> None:
    spender, spender_whoop, stored = await stale_user(app)
    empty, _, _ = await stale_user(app, sleeps=0)
    other, _, _ = await stale_user(app)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    forced = "/api/v1/smart/sleep?force_refresh=true"
    async with client_of(app) as client:
        spent = [(await client.get(forced, headers=auth(spender))).json() for _ in range(3)]
        nothing = [await client.get(forced, headers=auth(empty)) for _ in range(3)]
        others = await client.get("/api/v1/smart/sleep", headers=auth(other))
    assert [b["metadata"]["source"] for b in spent] == ["whoop_api", "whoop_api", "stale_cache"]
    assert "refresh limit" in spent[2]["metadata"]["error"]
    assert spent[2]["metadata"]["record_count"] == 3
    assert [r.status_code for r in nothing[:2]] == [200, 200]  # empty pages: nothing cached
    assert nothing[2].status_code == 429
    assert nothing[2].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(nothing[2].headers["Retry-After"]) <= 60
    assert others.json()["metadata"]["source"] == "whoop_api"
    assert route.call_count == 5  # two each for the spenders, one for the other user
    # The spender's own webhook job is the app's work, not a read: it is fetched all the same.
    assert await _webhook_job(app, whoop, spender, spender_whoop) == (EventStatus.DONE, 1)


async def test_past_the_days_forecast_reads_give_way_to_announced_versions(
    app: FastAPI, whoop: respx.MockRouter
) -> None:
    user, whoop_user, stored = await stale_user(app)
    empty, _, _ = await stale_user(app, sleeps=0)
    limiter = _context(app).limiter
    for _ in range(6):  # six calls in the last hour: at this rate the day's 10 do not last
        await limiter.acquire(Priority.BACKGROUND, max_wait=0)
    route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
    async with client_of(app) as client:
        read = await client.get("/api/v1/smart/sleep", headers=auth(user))
        forced = await client.get("/api/v1/smart/sleep?force_refresh=true", headers=auth(user))
        nothing = await client.get("/api/v1/smart/sleep", headers=auth(empty))
    for answer in (read.json(), forced.json()):
        assert answer["metadata"]["source"] == "stale_cache"
        assert "day's WHOOP budget" in answer["metadata"]["error"]
    assert nothing.status_code == 429  # nothing cached: no 5xx, a time to come back
    assert nothing.json()["error"]["code"] == "rate_limited"
    assert "day's WHOOP budget" in nothing.json()["error"]["message"]
    assert int(nothing.headers["Retry-After"]) > 0
    assert route.call_count == 0
    assert REGISTRY.get_sample_value("whoopsync_whoop_budget_forecast_calls") == 12
    # An announced version still gets its fetch.
    assert await _webhook_job(app, whoop, user, whoop_user) == (EventStatus.DONE, 1)
    async with state_of(app).session_factory() as session:
        usage = await budget_usage(limiter, session)
    assert (usage.day_used, usage.day_limit, usage.day_forecast) == (7, 10, 14)
    assert usage.users_connected >= 1
    assert usage.users_carried == 10 * usage.users_connected // 14
    assert REGISTRY.get_sample_value("whoopsync_whoop_budget_users_carried") == usage.users_carried


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_share_holds_across_two_api_processes(
    database_url: str, redis_url: str, redis: aioredis.Redis, whoop: respx.MockRouter
) -> None:
    settings = make_settings(database_url, redis_url, user_refreshes_per_minute=3)
    async for one, two in on_a_clear_inbox(settings, 2):
        user, _, stored = await stale_user(one)
        route = whoop.get(SLEEPS).respond(json=collection_body(DataType.SLEEP, stored))
        sources = []
        async with client_of(one) as first, client_of(two) as second:
            for client in (first, second) * 3:
                answer = await client.get(
                    "/api/v1/smart/sleep?force_refresh=true", headers=auth(user)
                )
                sources.append(answer.json()["metadata"]["source"])
        assert route.call_count == 3
        assert sources == ["whoop_api"] * 3 + ["stale_cache"] * 3
