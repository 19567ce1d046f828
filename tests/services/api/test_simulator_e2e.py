"""The connect flow and reads end to end against the simulator, over real HTTP on a free port."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI

from services.api.app import BackgroundBackfill
from services.simulator.app import create_app as create_simulator
from services.simulator.config import SimConfig
from tests.services.api.conftest import auth, make_settings, running

TYPES = ("recovery", "sleep", "cycle", "workout")


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    """The simulator, served by uvicorn on a free port of 127.0.0.1."""
    config = SimConfig(
        client_id="test-client",
        client_secret="test-secret",
        users=3,
        days=10,
        seed=11,
        rate_limit_per_minute=100_000,
        rate_limit_per_day=1_000_000,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_simulator(config), log_config=None, lifespan="on", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the simulator did not start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    sock.close()


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
    connect = (await client.get("/api/v1/whoop/connect", headers=auth(user))).json()
    async with httpx.AsyncClient() as browser:
        redirect = await browser.get(connect["authorization_url"])
    assert redirect.status_code == 302, redirect.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["location"]).query).items()}
    assert query["state"] == connect["state"]
    return query


async def _hand_on(
    client: httpx.AsyncClient, user: uuid.UUID, query: dict[str, str]
) -> httpx.Response:
    """What an app does with WHOOP's redirect to its own URI: POST the code and state, signed in."""
    body = {"code": query["code"], "state": query["state"]}
    return await client.post("/api/v1/whoop/callback", json=body, headers=auth(user))


async def _connect(client: httpx.AsyncClient, user: uuid.UUID) -> int:
    query = await _authorize(client, user)
    callback = await _hand_on(client, user, query)
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
    callback = await _hand_on(client, user, query)
    assert callback.status_code == 200
    whoop_user_id = callback.json()["whoop_user_id"]
    replay = await _hand_on(client, user, query)
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
