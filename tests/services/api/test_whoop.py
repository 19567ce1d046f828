"""The connect flow (SPEC §3.2) with WHOOP mocked: state, callback, connection state, revoke."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import redis.asyncio as aioredis
import respx
from fastapi import FastAPI

from common.db.repositories import (
    ConnectionRepository,
    OAuthStateRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.types import DataType
from tests.services.api.conftest import (
    auth,
    connect_user,
    mark_synced,
    mock_whoop_account,
    objects,
    seed,
    state_for,
    state_of,
)

READ_SCOPES = {
    "read:recovery",
    "read:cycles",
    "read:workout",
    "read:sleep",
    "read:profile",
    "read:body_measurement",
}


async def test_connect_answers_authorize_url_and_state(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/whoop/connect", headers=auth(uuid.uuid4()))

    body = response.json()
    assert set(body) == {"authorization_url", "state"}
    assert len(body["state"]) == 8
    url = urlsplit(body["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://whoop.test/oauth/oauth2/auth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == "test-client"
    assert query["redirect_uri"] == "http://app.test/api/v1/whoop/callback"
    assert query["response_type"] == "code"
    assert query["state"] == body["state"]
    assert set(query["scope"].split()) == READ_SCOPES | {"offline"}


async def test_callback_stores_encrypted_tokens_and_enqueues_backfill(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter, redis: aioredis.Redis
) -> None:
    user = uuid.uuid4()
    exchange = mock_whoop_account(
        whoop,
        777001,
        access_token="new-access",
        refresh_token="new-refresh",
        scope="offline read:recovery read:cycles",
    )
    state = await state_for(client, user)

    response = await client.get("/api/v1/whoop/callback", params={"code": "c0de", "state": state})

    assert response.status_code == 200
    assert response.json() == {"status": "connected", "whoop_user_id": 777001}
    assert b"code=c0de" in exchange.calls[0].request.content
    async with state_of(app).session_factory() as session:
        row = await ConnectionRepository(session).get(user)
    assert row is not None
    assert row.whoop_user_id == 777001
    assert row.access_token_enc is not None
    assert "new-access" not in row.access_token_enc
    assert state_of(app).cipher.decrypt(row.access_token_enc) == "new-access"
    assert row.refresh_token_enc is not None
    assert state_of(app).cipher.decrypt(row.refresh_token_enc) == "new-refresh"
    assert await redis.zcard("arq:queue") == 1  # backfill_user handed to the workers
    connection = await client.get("/api/v1/whoop/connection", headers=auth(user))
    body = connection.json()
    assert body.pop("backfill")["status"] == "pending"  # queued, not started (SPEC 3.2)
    assert body == {
        "connected": True,
        "whoop_user_id": 777001,
        "scopes": ["offline", "read:recovery", "read:cycles"],
        "status": "active",
    }


async def test_state_is_single_use(client: httpx.AsyncClient, whoop: respx.MockRouter) -> None:
    mock_whoop_account(whoop, 777002)
    state = await state_for(client, uuid.uuid4())
    params = {"code": "c0de", "state": state}
    assert (await client.get("/api/v1/whoop/callback", params=params)).status_code == 200

    again = await client.get("/api/v1/whoop/callback", params=params)

    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_state"


async def test_unknown_state_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/whoop/callback", params={"code": "x", "state": "nope1234"})
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert response.json()["error"]["code"] == "invalid_state"


async def test_expired_state_is_400(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with state_of(app).session_factory() as session:
        await OAuthStateRepository(session).create("old12345", uuid.uuid4(), timedelta(seconds=-1))
        await session.commit()
    response = await client.get("/api/v1/whoop/callback", params={"code": "x", "state": "old12345"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_state"


async def test_whoop_error_answer_is_400(client: httpx.AsyncClient) -> None:
    state = await state_for(client, uuid.uuid4())
    params = {"error": "access_denied", "error_description": "The user denied", "state": state}
    response = await client.get("/api/v1/whoop/callback", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "oauth_error",
        "message": "WHOOP answered error=access_denied: The user denied",
    }


async def test_failed_exchange_is_400(client: httpx.AsyncClient, whoop: respx.MockRouter) -> None:
    whoop.post("/oauth/oauth2/token").respond(400, json={"error": "invalid_grant"})
    state = await state_for(client, uuid.uuid4())
    response = await client.get("/api/v1/whoop/callback", params={"code": "bad", "state": state})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "exchange_failed"
    assert "invalid_grant" in response.json()["error"]["message"]


async def test_connection_without_one_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/whoop/connection", headers=auth(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_connected"


async def test_disconnect_revokes_at_whoop_and_keeps_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    await seed(app, user, DataType.CYCLE, objects(DataType.CYCLE, whoop_user, 2))
    revoke = whoop.delete("/developer/v2/user/access").respond(204)

    response = await client.delete("/api/v1/whoop/connection", headers=auth(user))

    assert response.json() == {"status": "revoked", "revoked_at_whoop": True, "purged": False}
    assert revoke.calls[0].request.headers["Authorization"] == f"Bearer access-{user}"
    async with state_of(app).session_factory() as session:
        row = await ConnectionRepository(session).get(user)
        kept = await RecordRepository(session, DataType.CYCLE).count(user)
    assert row is not None
    assert row.access_token_enc is None
    assert row.refresh_token_enc is None
    assert kept == 2
    state = await client.get("/api/v1/whoop/connection", headers=auth(user))
    assert state.json()["status"] == "revoked"
    assert state.json()["connected"] is False
    read = await client.get("/api/v1/smart/cycle", headers=auth(user))
    assert read.status_code == 404


async def test_disconnect_with_purge_forgets_cached_data_and_sync_log(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = await connect_user(app)
    other, other_whoop = await connect_user(app)
    for owner, whoop_id in ((user, whoop_user), (other, other_whoop)):
        await seed(app, owner, DataType.SLEEP, objects(DataType.SLEEP, whoop_id, 2))
        await mark_synced(app, owner, DataType.SLEEP, timedelta(minutes=1))
    whoop.delete("/developer/v2/user/access").respond(500)  # revoke fails: we forget anyway

    response = await client.delete(
        "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(user)
    )

    body = response.json()
    assert body.pop("receipt")["deleted"]["records"]["sleep"] == 2  # the erase's receipt
    assert body == {"status": "revoked", "revoked_at_whoop": False, "purged": True}
    async with state_of(app).session_factory() as session:
        assert await RecordRepository(session, DataType.SLEEP).count(user) == 0
        assert await SyncLogRepository(session).for_user(user) == {}
        assert await RecordRepository(session, DataType.SLEEP).count(other) == 2
        assert await SyncLogRepository(session).for_user(other) != {}
