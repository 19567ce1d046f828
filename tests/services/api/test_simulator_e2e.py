"""The connect flow and reads end to end against the simulator, over real HTTP on a free port."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from services.api.app import BackgroundBackfill
from services.simulator.config import SimConfig
from services.simulator.server import RunningSim
from tests import connect_flow
from tests.services.api.conftest import auth, make_settings, running

TYPES = ("recovery", "sleep", "cycle", "workout")


@pytest.fixture
def whoop_sim_config() -> SimConfig:
    """Three members with ten days of history."""
    return SimConfig(
        client_id="test-client",
        client_secret="test-secret",
        users=3,
        days=10,
        seed=11,
        rate_limit_per_minute=100_000,
        rate_limit_per_day=1_000_000,
    )


@pytest.fixture
def sim_url(whoop_sim: RunningSim) -> str:
    """The simulator over real HTTP on a free port of 127.0.0.1."""
    return whoop_sim.base_url


@pytest.fixture
async def api(
    sim_url: str, pg_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The api pointed at the simulator (no worker: the test runs what it needs)."""
    settings = make_settings(
        pg_url,
        redis_url,
        whoop_api_base_url=f"{sim_url}/developer",
        whoop_oauth_base_url=f"{sim_url}/oauth/oauth2",
    )
    async for app in running(settings):
        # The backfill runs in this process, as it would in a worker.
        app.state.api = dataclasses.replace(
            app.state.api, queue=BackgroundBackfill(app.state.context)
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield app, client


async def _authorize(client: httpx.AsyncClient, user: uuid.UUID) -> dict[str, str]:
    """Ask the api for the authorize URL, follow it at the simulator; the redirect's query."""
    connect = await connect_flow.start(client, auth(user))
    async with httpx.AsyncClient() as browser:
        redirect = await connect_flow.approve(browser, connect["authorization_url"])
    query = connect_flow.query_of(redirect)
    assert query["state"] == connect["state"]
    return query


async def _connect(client: httpx.AsyncClient, user: uuid.UUID) -> int:
    query = await _authorize(client, user)
    callback = await connect_flow.hand_on(client, auth(user), query)
    assert callback.status_code == 200, callback.text
    assert callback.json()["status"] == "connected"
    whoop_user_id: int = callback.json()["whoop_user_id"]
    return whoop_user_id


async def _backfilled(client: httpx.AsyncClient, user: uuid.UUID) -> dict[str, Any]:
    for _ in range(200):
        status = (await client.get("/api/v1/smart/sync-status", headers=auth(user))).json()
        entries: dict[str, Any] = status["sync_status"]
        if all(e["sync_status"] != "never_synced" for e in entries.values()):
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError("the backfill did not finish")


async def test_connect_read_and_disconnect(
    api: tuple[FastAPI, httpx.AsyncClient], sim_url: str
) -> None:
    _app, client = api
    user = uuid.uuid4()
    query = await _authorize(client, user)
    callback = await connect_flow.hand_on(client, auth(user), query)
    assert callback.status_code == 200
    whoop_user_id = callback.json()["whoop_user_id"]
    replay = await connect_flow.hand_on(client, auth(user), query)
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "invalid_state"

    entries = await _backfilled(client, user)
    assert {e["sync_status"] for e in entries.values()} == {"success"}
    for data_type in TYPES:
        read = (await client.get(f"/api/v1/smart/{data_type}", headers=auth(user))).json()
        assert read["metadata"]["source"] == "cache"
        assert read["data"], data_type
        assert {r["user_id"] for r in read["data"]} == {whoop_user_id}
    forced = await client.get(
        "/api/v1/smart/sleep", params={"force_refresh": "true"}, headers=auth(user)
    )
    assert forced.json()["metadata"]["source"] == "whoop_api"

    gone = await client.delete(
        "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(user)
    )
    erased = gone.json()
    assert erased.pop("receipt")["user_id"] == str(user)  # the erase's receipt
    assert erased == {"status": "revoked", "revoked_at_whoop": True, "purged": True}
    async with httpx.AsyncClient() as http:
        members = (await http.get(f"{sim_url}/_sim/users")).json()["users"]
    assert not next(m for m in members if m["user_id"] == whoop_user_id)["connected"]
    after = await client.get("/api/v1/smart/sleep", headers=auth(user))
    assert after.status_code == 404


async def test_access_denied_at_whoop_is_400(
    api: tuple[FastAPI, httpx.AsyncClient], sim_url: str
) -> None:
    _app, client = api
    async with httpx.AsyncClient() as http:
        await http.post(f"{sim_url}/_sim/oauth/deny", json={"count": 1})
    query = await _authorize(client, uuid.uuid4())
    assert query["error"] == "access_denied"

    response = await client.get("/api/v1/whoop/callback", params=query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "oauth_error"
    assert "access_denied" in response.json()["error"]["message"]


async def test_refused_refresh_answers_stale_and_shows_reauthorization(
    api: tuple[FastAPI, httpx.AsyncClient], sim_url: str
) -> None:
    _app, client = api
    user = uuid.uuid4()
    whoop_user_id = await _connect(client, user)
    entries = await _backfilled(client, user)
    assert entries["cycle"]["sync_status"] == "success", entries
    async with httpx.AsyncClient(base_url=f"{sim_url}/_sim/users/{whoop_user_id}") as http:
        await http.post("/expire-access-token")
        await http.post("/revoke-refresh-token")

    read = await client.get(
        "/api/v1/smart/cycle", params={"force_refresh": "true"}, headers=auth(user)
    )

    body = read.json()
    assert body["status"] == "success_with_warning", body
    assert body["metadata"]["source"] == "stale_cache"
    assert body["data"]
    assert "grant" in body["metadata"]["error"] or "reconnect" in body["metadata"]["error"]
    status = (await client.get("/api/v1/smart/sync-status", headers=auth(user))).json()
    assert status["sync_status"]["cycle"]["sync_status"] == "reauthorization_required"
    connection = (await client.get("/api/v1/whoop/connection", headers=auth(user))).json()
    assert connection["status"] == "reauthorization_required"
