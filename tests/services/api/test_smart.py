"""The smart reads: cache, whoop_api and stale_cache answers in the guide's exact formats."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from common.db.repositories import SyncLogRepository
from common.types import DataType, Trigger
from tests.services.api.conftest import (
    auth,
    collection_body,
    connect_user,
    make_settings,
    mark_synced,
    mock_collection,
    objects,
    running,
    seed,
    state_of,
)

CACHE_KEYS = {
    "source",
    "record_count",
    "last_sync_at",
    "time_since_sync_seconds",
    "time_since_sync_hours",
    "threshold_seconds",
    "cached_enough",
    "note",
}
API_KEYS = {"source", "record_count", "synced_at", "note"}


def _parse(moment: str) -> datetime:
    assert moment.endswith("+00:00"), moment
    return datetime.fromisoformat(moment)


async def test_fresh_cache_answers_without_calling_whoop(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.RECOVERY, whoop_user, 3)
    await seed(app, user, DataType.RECOVERY, stored)
    synced = await mark_synced(app, user, DataType.RECOVERY, timedelta(minutes=10))
    route = mock_collection(whoop, DataType.RECOVERY, [])

    response = await client.get("/api/v1/smart/recovery", headers=auth(user))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "data", "metadata"}
    assert body["status"] == "success"
    assert body["data"] == stored  # newest first, exactly as WHOOP returned them
    meta = body["metadata"]
    assert set(meta) == CACHE_KEYS
    assert meta["source"] == "cache"
    assert meta["record_count"] == 3
    assert _parse(meta["last_sync_at"]) == synced
    assert isinstance(meta["time_since_sync_seconds"], int)
    assert 600 <= meta["time_since_sync_seconds"] < 610
    assert meta["time_since_sync_hours"] == 0.17
    assert meta["threshold_seconds"] == 7200
    assert meta["cached_enough"] is True
    assert meta["note"] == "✓ Using cached data (fresh enough)"
    assert not route.called


async def test_never_synced_fetches_from_whoop_and_answers_from_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    fetched = objects(DataType.SLEEP, whoop_user, 2)
    route = mock_collection(whoop, DataType.SLEEP, fetched)

    response = await client.get("/api/v1/smart/sleep", headers=auth(user))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"] == fetched
    meta = body["metadata"]
    assert set(meta) == API_KEYS
    assert meta["source"] == "whoop_api"
    assert meta["record_count"] == 2
    assert meta["note"] == "✓ Fresh data from WHOOP API"
    assert abs(_parse(meta["synced_at"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert route.call_count == 1
    assert route.calls[0].request.headers["Authorization"] == f"Bearer access-{user}"
    again = await client.get("/api/v1/smart/sleep", headers=auth(user))
    assert again.json()["metadata"]["source"] == "cache"
    assert route.call_count == 1


@pytest.mark.parametrize("data_type", list(DataType))
async def test_threshold_boundary_per_type(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter, data_type: DataType
) -> None:
    user, whoop_user = await connect_user(app)
    threshold = state_of(app).settings.threshold_seconds(data_type)
    route = mock_collection(whoop, data_type, objects(data_type, whoop_user, 1))
    await mark_synced(app, user, data_type, timedelta(seconds=threshold - 5))
    inside = await client.get(f"/api/v1/smart/{data_type}", headers=auth(user))
    assert inside.json()["metadata"]["source"] == "cache"
    assert inside.json()["metadata"]["threshold_seconds"] == threshold
    assert not route.called

    await mark_synced(app, user, data_type, timedelta(seconds=threshold))
    past = await client.get(f"/api/v1/smart/{data_type}", headers=auth(user))
    assert past.json()["metadata"]["source"] == "whoop_api"
    assert route.call_count == 1


async def test_force_refresh_skips_fresh_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    await mark_synced(app, user, DataType.CYCLE, timedelta(minutes=1))
    route = mock_collection(whoop, DataType.CYCLE, objects(DataType.CYCLE, whoop_user, 1))

    response = await client.get(
        "/api/v1/smart/cycle", params={"force_refresh": "true"}, headers=auth(user)
    )

    assert response.json()["metadata"]["source"] == "whoop_api"
    assert route.call_count == 1
    async with state_of(app).session_factory() as session:
        history = await SyncLogRepository(session).history(user, DataType.CYCLE)
    assert history[0].trigger == Trigger.FORCE_REFRESH.value


async def test_answer_never_shows_an_older_version_than_the_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    [old] = objects(DataType.CYCLE, whoop_user, 1)
    newer = {
        **old,
        "updated_at": "2025-11-22T00:00:00.000Z",
        "score": {**old["score"], "strain": 9},
    }
    await seed(app, user, DataType.CYCLE, [newer])
    mock_collection(whoop, DataType.CYCLE, [old])  # WHOOP's answer lags behind a webhook's write

    response = await client.get("/api/v1/smart/cycle", headers=auth(user))

    assert response.json()["metadata"]["source"] == "whoop_api"
    assert response.json()["data"] == [newer]


async def test_without_connection_is_404_not_connected(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/smart/cycle", headers=auth(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "not_connected",
            "message": "No WHOOP account is connected for this user",
        },
    }


async def test_limit_start_and_end_select_the_window(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.CYCLE, whoop_user, 5)  # starts 20, 19, 18, 17, 16 Nov at 06:00
    await seed(app, user, DataType.CYCLE, stored)
    await mark_synced(app, user, DataType.CYCLE, timedelta(minutes=1))

    limited = await client.get("/api/v1/smart/cycle", params={"limit": 2}, headers=auth(user))
    assert limited.json()["data"] == stored[:2]
    assert limited.json()["metadata"]["record_count"] == 2

    window = {"start": "2025-11-17T06:00:00+00:00", "end": "2025-11-19T06:00:00Z"}
    windowed = await client.get("/api/v1/smart/cycle", params=window, headers=auth(user))
    assert windowed.json()["data"] == stored[2:4]  # start inclusive, end exclusive
    offset = {"start": "2025-11-18T01:00:00-05:00"}  # 06:00 UTC
    shifted = await client.get("/api/v1/smart/cycle", params=offset, headers=auth(user))
    assert shifted.json()["data"] == stored[:3]
    naive = {"start": "2025-11-18T06:00:00"}  # no offset: UTC
    as_utc = await client.get("/api/v1/smart/cycle", params=naive, headers=auth(user))
    assert as_utc.json()["data"] == stored[:3]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"force_refresh": "maybe"},
        {"start": "yesterday"},
        {"end": "2025-13-40T00:00:00Z"},
        {"start": "2025-11-19T00:00:00Z", "end": "2025-11-18T00:00:00Z"},
        {"start": "0001-01-01T00:00:00+01:00"},  # before datetime.min once taken to UTC
        {"end": "9999-12-31T23:59:59-01:00"},  # after datetime.max once taken to UTC
    ],
)
async def test_bad_query_is_422_validation_error(
    app: FastAPI, client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    user, _ = await connect_user(app)
    response = await client.get("/api/v1/smart/sleep", params=params, headers=auth(user))
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["message"]


async def test_concurrent_stale_reads_share_one_fetch(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    page = collection_body(DataType.RECOVERY, objects(DataType.RECOVERY, whoop_user, 3))

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return httpx.Response(200, json=page)

    route = whoop.get("/developer/v2/recovery").mock(side_effect=slow)

    answers = await asyncio.gather(
        *(client.get("/api/v1/smart/recovery", headers=auth(user)) for _ in range(20))
    )

    assert route.call_count == 1
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["metadata"]["source"] == "whoop_api"
    assert answers[0].json()["metadata"]["record_count"] == 3


async def test_users_never_see_each_others_records(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice, alice_whoop = await connect_user(app)
    bob, _ = await connect_user(app)
    await seed(app, alice, DataType.WORKOUT, objects(DataType.WORKOUT, alice_whoop, 2))
    for user in (alice, bob):
        await mark_synced(app, user, DataType.WORKOUT, timedelta(minutes=1))

    seen_by_bob = await client.get("/api/v1/smart/workout", headers=auth(bob))
    seen_by_alice = await client.get("/api/v1/smart/workout", headers=auth(alice))

    assert seen_by_bob.json()["data"] == []
    assert seen_by_bob.json()["metadata"]["record_count"] == 0
    assert len(seen_by_alice.json()["data"]) == 2


def _reads(data_type: str, source: str) -> float:
    value = REGISTRY.get_sample_value(
        "whoopsync_reads_total", {"data_type": data_type, "source": source}
    )
    return value or 0.0


async def test_reads_are_counted_by_type_and_source(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    mock_collection(whoop, DataType.CYCLE, objects(DataType.CYCLE, whoop_user, 1))
    before: dict[str, Any] = {s: _reads("cycle", s) for s in ("cache", "whoop_api")}
    await client.get("/api/v1/smart/cycle", headers=auth(user))
    await client.get("/api/v1/smart/cycle", headers=auth(user))
    assert _reads("cycle", "whoop_api") == before["whoop_api"] + 1
    assert _reads("cycle", "cache") == before["cache"] + 1
    metrics = await client.get("/metrics")
    assert 'whoopsync_reads_total{data_type="cycle",source="cache"}' in metrics.text


async def test_reads_work_on_the_sqlite_backend(
    sqlite_url: str, redis_url: str, whoop: respx.MockRouter
) -> None:
    settings = make_settings(sqlite_url, redis_url)
    async for app in running(settings):
        user, whoop_user = await connect_user(app)
        route = mock_collection(whoop, DataType.WORKOUT, objects(DataType.WORKOUT, whoop_user, 2))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            first = await client.get("/api/v1/smart/workout", headers=auth(user))
            second = await client.get("/api/v1/smart/workout", headers=auth(user))
        assert first.json()["metadata"]["source"] == "whoop_api"
        assert second.json()["metadata"]["source"] == "cache"
        assert first.json()["data"] == second.json()["data"]
        assert len(second.json()["data"]) == 2
        assert route.call_count == 1


@pytest.mark.parametrize(
    "params",
    [
        {"start": "0001-01-01T00:00:00Z"},
        {"start": "0001-01-01T00:00:00-01:00"},
        {"end": "9999-12-31T23:59:59.999999Z"},
        {"end": "9999-12-31T23:59:59+01:00"},
        {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59.999999Z"},
    ],
)
async def test_the_widest_windows_are_read_not_refused_or_crashed(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter, params: dict[str, str]
) -> None:
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.CYCLE, whoop_user, 3)
    mock_collection(whoop, DataType.CYCLE, stored)
    response = await client.get(
        "/api/v1/smart/cycle", params={**params, "force_refresh": "true"}, headers=auth(user)
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == stored
