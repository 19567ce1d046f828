"""The app as a whole: bearer auth on every route, the error form everywhere, the OpenAPI document,
sync status, operations endpoints, and refreshes shared across processes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm
from openapi_schema_validator import OAS31Validator

from common.auth import mint_token
from common.config import ConfigError, Settings
from common.db.repositories import ConnectionRepository
from common.types import ConnectionStatus, DataType, SyncStatus
from services.api.app import create_app
from tests.services.api.conftest import (
    SECRET,
    WHOOP,
    auth,
    collection_body,
    connect_user,
    make_settings,
    mark_synced,
    mock_collection,
    objects,
    running,
    state_of,
)

ROUTES = [
    ("GET", "/api/v1/smart/recovery"),
    ("GET", "/api/v1/smart/sleep"),
    ("GET", "/api/v1/smart/cycle"),
    ("GET", "/api/v1/smart/workout"),
    ("GET", "/api/v1/smart/sync-status"),
    ("GET", "/api/v1/whoop/connect"),
    ("POST", "/api/v1/whoop/callback"),
    ("GET", "/api/v1/whoop/connection"),
    ("DELETE", "/api/v1/whoop/connection"),
]
USER = uuid.UUID("a57f70b4-d0a4-4aef-b721-a4b526f64869")


def _bad_tokens() -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "not_bearer": {"Authorization": f"Basic {mint_token(USER, SECRET)}"},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "expired": auth(USER, ttl=timedelta(seconds=-10)),
        "wrong_signature": {"Authorization": f"Bearer {mint_token(USER, SECRET + 'x')}"},
        "wrong_audience": auth(USER, audience="anon"),
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("case", list(_bad_tokens()))
async def test_every_route_refuses_bad_bearer(
    client: httpx.AsyncClient, method: str, path: str, case: str
) -> None:
    response = await client.request(method, path, headers=_bad_tokens()[case])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "unauthorized"
    assert SECRET not in response.text


@pytest.fixture
async def jwks_client(
    pg_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[tuple[Any, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256"}
    jwks_url = "https://auth.test/.well-known/jwks.json"
    settings = make_settings(pg_url, redis_url, jwt_secret=None, jwt_jwks_url=jwks_url)
    with respx.mock(assert_all_called=False) as router:
        router.get(jwks_url).respond(json={"keys": [jwk]})
        async for app in running(settings):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
                yield c, key


async def test_the_api_refuses_to_start_without_redis(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="WHOOPSYNC_REDIS_URL"):
        create_app(make_settings(pg_url, None))


async def test_rs256_tokens_are_checked_against_the_jwks(jwks_client: tuple[Any, Any]) -> None:
    client, key = jwks_client
    claims = {"sub": str(uuid.uuid4()), "exp": 4102444800, "aud": "authenticated"}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    response = await client.get("/api/v1/smart/cycle", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 404  # authenticated; this user has no connection
    assert response.json()["error"]["code"] == "not_connected"
    forged = mint_token(uuid.uuid4(), SECRET, audience="authenticated")  # HS256 is not accepted
    refused = await client.get("/api/v1/smart/cycle", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401


async def test_unknown_route_and_wrong_method_use_the_error_form(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/api/v1/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await client.post("/api/v1/smart/recovery", headers=auth(USER))
    assert wrong.status_code == 405
    assert wrong.json() == {
        "status": "error",
        "error": {"code": "method_not_allowed", "message": "Method Not Allowed"},
    }


async def test_unexpected_failure_is_500_in_the_error_form(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*_args: Any) -> Any:
        raise RuntimeError("database exploded")

    monkeypatch.setattr(state_of(app).reader, "read", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.get("/api/v1/smart/sleep", headers=auth(USER))
    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "error": {"code": "internal_error", "message": "Internal server error"},
    }


async def test_openapi_describes_every_response_with_an_example(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for method, path in [*ROUTES, ("GET", "/api/v1/whoop/callback")]:
        operation = document["paths"][path][method.lower()]
        for status, response in operation["responses"].items():
            content = response["content"]["application/json"]
            schema = content["schema"]
            has_example = "example" in content or "examples" in content
            ref = schema.get("$ref", "")
            component = document["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
            assert has_example or "example" in component or _fields_have_examples(component), (
                f"{method} {path} {status} has no example"
            )
            if status.startswith(("4", "5")):
                assert ref.endswith("/ErrorResponse"), f"{method} {path} {status}"
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def _fields_have_examples(component: dict[str, Any]) -> bool:
    properties = component.get("properties", {})
    return bool(properties) and all("examples" in p for p in properties.values())


def _validator(document: dict[str, Any], name: str) -> OAS31Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return OAS31Validator(schema)


async def test_answers_validate_against_our_openapi_document(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    document = (await client.get("/openapi.json")).json()
    user, whoop_user = await connect_user(app)
    mock_collection(whoop, DataType.SLEEP, objects(DataType.SLEEP, whoop_user, 2))
    for _ in range(2):  # whoop_api, then cache
        answer = await client.get("/api/v1/smart/sleep", headers=auth(user))
        _validator(document, "SmartResponse").validate(answer.json())
    status = await client.get("/api/v1/smart/sync-status", headers=auth(user))
    _validator(document, "SyncStatusResponse").validate(status.json())
    missing = await client.get("/api/v1/smart/sleep", headers=auth(uuid.uuid4()))
    _validator(document, "ErrorResponse").validate(missing.json())


ENTRY_KEYS = {
    "confirmed_by",
    "last_fetch_at",
    "last_sync_at",
    "sync_status",
    "records_synced",
    "time_since_sync_seconds",
    "time_since_sync_hours",
    "threshold_seconds",
    "threshold_hours",
    "needs_sync",
    "error_message",
}


async def test_sync_status_after_syncs_and_a_failure(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, _ = await connect_user(app)
    await mark_synced(app, user, DataType.RECOVERY, timedelta(hours=1))
    await mark_synced(app, user, DataType.WORKOUT, timedelta(hours=1))
    synced_sleep = await mark_synced(app, user, DataType.SLEEP, timedelta(hours=3))
    await mark_synced(
        app, user, DataType.SLEEP, timedelta(minutes=1), SyncStatus.FAILED, "WHOOP API returned 503"
    )

    response = await client.get("/api/v1/smart/sync-status", headers=auth(user))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user_id", "sync_status", "check_timestamp", "webhook_channel"}
    assert set(body["webhook_channel"]) == {"live", "last_event_at"}
    assert body["user_id"] == str(user)
    assert body["check_timestamp"].endswith("+00:00")
    entries = body["sync_status"]
    assert set(entries) == {"recovery", "sleep", "cycle", "workout"}
    assert all(set(e) == ENTRY_KEYS for e in entries.values())
    recovery = entries["recovery"]
    assert recovery["sync_status"] == "success"
    assert recovery["needs_sync"] is False
    assert 3600 <= recovery["time_since_sync_seconds"] < 3610
    assert recovery["time_since_sync_hours"] == 1.0
    assert (recovery["threshold_seconds"], recovery["threshold_hours"]) == (7200, 2.0)
    assert entries["workout"]["needs_sync"] is True  # 1 h old, threshold 1 h
    sleep = entries["sleep"]
    assert sleep["sync_status"] == "failed"
    assert sleep["last_sync_at"] == synced_sleep.isoformat()  # the last SUCCESS
    assert sleep["needs_sync"] is True
    assert sleep["error_message"] == "WHOOP API returned 503"
    assert sleep["confirmed_by"] == "sync"
    cycle = entries["cycle"]
    assert cycle["sync_status"] == "never_synced"
    assert cycle["last_sync_at"] is None
    assert cycle["time_since_sync_seconds"] is None
    assert cycle["time_since_sync_hours"] is None
    assert cycle["needs_sync"] is True
    assert cycle["confirmed_by"] is None
    assert cycle["last_fetch_at"] is None


async def test_sync_status_shows_reauthorization_required(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, _ = await connect_user(app)
    await mark_synced(app, user, DataType.CYCLE, timedelta(minutes=5))
    async with state_of(app).session_factory() as session:
        await ConnectionRepository(session).set_status(
            user, ConnectionStatus.REAUTHORIZATION_REQUIRED
        )
        await session.commit()

    response = await client.get("/api/v1/smart/sync-status", headers=auth(user))

    entries = response.json()["sync_status"]
    assert {e["sync_status"] for e in entries.values()} == {"reauthorization_required"}
    assert entries["cycle"]["last_sync_at"] is not None
    assert "reconnect" in entries["cycle"]["error_message"]


async def test_sync_status_without_connection_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/smart/sync-status", headers=auth(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_connected"


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    metrics = await client.get("/metrics")
    assert "whoopsync_reads_total" in metrics.text


async def test_refresh_is_shared_across_processes(
    settings: Settings, redis: aioredis.Redis, whoop: respx.MockRouter
) -> None:
    """Two app instances (two processes' worth of state) share Redis: one upstream fetch."""
    apps = [running(settings), running(settings)]
    first, second = [await anext(a) for a in apps]
    try:
        user, whoop_user = await connect_user(first)
        page = collection_body(DataType.CYCLE, objects(DataType.CYCLE, whoop_user, 2))

        async def slow(_request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.3)
            return httpx.Response(200, json=page)

        route = whoop.get(f"{WHOOP}/developer/v2/cycle").mock(side_effect=slow)
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://api.test")
            for a in (first, second)
        ]
        answers = await asyncio.gather(
            *(c.get("/api/v1/smart/cycle", headers=auth(user)) for c in clients for _ in range(5))
        )
        for c in clients:
            await c.aclose()
    finally:
        for a in apps:
            await a.aclose()

    assert route.call_count == 1
    bodies = [a.json() for a in answers]
    assert {b["metadata"]["source"] for b in bodies} == {"whoop_api"}
    assert len({json.dumps(b["data"]) for b in bodies}) == 1


def test_api_command_refuses_to_start_without_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.chdir("/")  # no .env file
    for name in ("CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI"):
        monkeypatch.setenv(f"WHOOPSYNC_WHOOP_{name}", "x")
    monkeypatch.setenv("WHOOPSYNC_TOKEN_ENCRYPTION_KEY", "A" * 43 + "=")
    monkeypatch.delenv("WHOOPSYNC_JWT_SECRET", raising=False)
    monkeypatch.delenv("WHOOPSYNC_JWT_JWKS_URL", raising=False)
    assert cli.main(["api", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "whoop-sync: WHOOPSYNC_JWT_SECRET is required but not set"
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_the_app_not_a_cdn(
    client: httpx.AsyncClient, page: str
) -> None:
    html = await client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets), html.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert fetched.content, asset
