"""The smart reads when WHOOP fails: stale cache with a readable reason, or 502 with nothing cached."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from fastapi import FastAPI

from common.db.repositories import ConnectionRepository, SyncLogRepository
from common.types import ConnectionStatus, DataType, SyncStatus
from tests.services.api.conftest import (
    COLLECTIONS,
    auth,
    connect_user,
    mark_synced,
    mock_collection,
    objects,
    seed,
    state_of,
)

STALE_KEYS = {"source", "record_count", "warning", "error"}


def _fail_with(kind: str, whoop: respx.MockRouter, path: str) -> str:
    """Make WHOOP fail one way; the readable reason the answer should carry."""
    if kind == "5xx":
        whoop.get(f"/developer{path}").respond(503)
        return "WHOOP API returned 503"
    if kind == "timeout":
        whoop.get(f"/developer{path}").mock(side_effect=httpx.ConnectTimeout("slow"))
        return "timeout"
    if kind == "429":
        whoop.get(f"/developer{path}").respond(429, headers={"X-RateLimit-Reset": "3600"})
        return "rate limit"
    whoop.get(f"/developer{path}").respond(401)
    whoop.post("/oauth/oauth2/token").respond(400, json={"error": "invalid_grant"})
    return "WHOOP refused the grant"


@pytest.mark.parametrize("kind", ["5xx", "timeout", "429", "revoked"])
async def test_whoop_failure_answers_stale_cache_with_reason(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter, kind: str
) -> None:
    user, whoop_user = await connect_user(app)
    stored = objects(DataType.WORKOUT, whoop_user, 2)
    await seed(app, user, DataType.WORKOUT, stored)
    await mark_synced(app, user, DataType.WORKOUT, timedelta(hours=5))
    reason = _fail_with(kind, whoop, COLLECTIONS[DataType.WORKOUT][0])

    response = await client.get("/api/v1/smart/workout", headers=auth(user))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success_with_warning"
    assert body["data"] == stored
    meta = body["metadata"]
    assert set(meta) == STALE_KEYS
    assert meta["source"] == "stale_cache"
    assert meta["record_count"] == 2
    assert meta["warning"] == "Using stale cached data due to sync failure"
    assert reason.lower() in meta["error"].lower()
    async with state_of(app).session_factory() as session:
        entry = await SyncLogRepository(session).get(user, DataType.WORKOUT)
    assert entry is not None
    assert entry.sync_status != SyncStatus.SUCCESS.value


async def test_whoop_failure_with_nothing_cached_is_502(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, _ = await connect_user(app)
    whoop.get("/developer/v2/recovery").respond(500)

    response = await client.get("/api/v1/smart/recovery", headers=auth(user))

    assert response.status_code == 502
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "whoop_unavailable"
    assert "WHOOP API returned 500" in body["error"]["message"]


async def test_reauthorization_required_connection_answers_stale_without_calling_whoop(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    await seed(app, user, DataType.SLEEP, objects(DataType.SLEEP, whoop_user, 1))
    async with state_of(app).session_factory() as session:
        await ConnectionRepository(session).set_status(
            user, ConnectionStatus.REAUTHORIZATION_REQUIRED
        )
        await session.commit()
    route = mock_collection(whoop, DataType.SLEEP, [])

    response = await client.get("/api/v1/smart/sleep", headers=auth(user))

    assert response.json()["metadata"]["source"] == "stale_cache"
    assert "reconnect" in response.json()["metadata"]["error"]
    assert not route.called


async def test_no_slot_in_the_apps_budget_with_nothing_cached_is_429_not_502(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    """Our own budget held the call back (no call was made, WHOOP did not fail): a time to come
    back, not a 5xx."""
    user, _ = await connect_user(app)
    route = whoop.get(f"/developer{COLLECTIONS[DataType.RECOVERY][0]}").respond(
        json={"records": []}
    )
    await state_of(app).whoop.limiter.block_for(600)  # the minute's budget spent by everyone else

    response = await client.get("/api/v1/smart/recovery", headers=auth(user))

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 600
    assert route.call_count == 0
