"""Fixtures of the api tests: the app over ASGITransport on the run's PostgreSQL and Redis, WHOOP
mocked with respx, and helpers that connect users and seed records and sync state."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from cryptography.fernet import Fernet
from fastapi import FastAPI

from common.auth import mint_token
from common.config import Settings
from common.db.repositories import (
    Attempt,
    ConnectionRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.types import DataType, SyncStatus, Trigger
from common.whoop.retry import RetryPolicy
from services.api.app import create_app
from services.api.deps import ApiState
from tests.common.db import samples
from tests.whoop_openapi import validate

WHOOP = "https://whoop.test"
API = f"{WHOOP}/developer"
SECRET = "api-test-secret-long-enough-for-hs256!"
AUDIENCE = "authenticated"
KEY = Fernet.generate_key().decode()
COLLECTIONS = {
    DataType.CYCLE: ("/v2/cycle", "PaginatedCycleResponse"),
    DataType.SLEEP: ("/v2/activity/sleep", "PaginatedSleepResponse"),
    DataType.RECOVERY: ("/v2/recovery", "RecoveryCollection"),
    DataType.WORKOUT: ("/v2/activity/workout", "WorkoutCollection"),
}
# Pushes configured (to a receiver respx answers when a test routes it).
PUSH_RECEIVER = "http://receiver.test/hooks"
PUSH_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
FAST_RETRY = RetryPolicy(attempts=3, total_seconds=2.0, backoff=0.01, max_backoff=0.02)


def make_settings(pg_url: str, redis_url: str | None, **overrides: Any) -> Settings:
    """Settings of an api under test, WHOOP at `https://whoop.test`."""
    values: dict[str, Any] = {
        "database_url": pg_url,
        "redis_url": redis_url,
        "whoop_api_base_url": API,
        "whoop_oauth_base_url": f"{WHOOP}/oauth/oauth2",
        "whoop_client_id": "test-client",
        "whoop_client_secret": "test-secret",
        "whoop_redirect_uri": "http://app.test/api/v1/whoop/callback",
        "jwt_secret": SECRET,
        "jwt_audience": AUDIENCE,
        "token_encryption_key": KEY,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    """The api's settings on the run's PostgreSQL and the test Redis index."""
    return make_settings(pg_url, redis_url)


def each_backend(**overrides: Any) -> Any:
    """A `settings` fixture for a test module: the api on the `backend` parameter's database (each
    in turn), with `overrides`. In the module: `settings = each_backend(...)`."""

    @pytest.fixture
    def settings(database_url: str, redis_url: str) -> Settings:
        return make_settings(database_url, redis_url, **overrides)

    return settings


async def running(settings: Settings) -> AsyncGenerator[FastAPI, None]:
    """An api app with its lifespan entered (WHOOP retries shortened for the tests)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.api.whoop.retry = FAST_RETRY
        yield app


@pytest.fixture
async def app(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[FastAPI]:
    """The api app, started."""
    async for started in running(settings):
        yield started


def client_of(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client talking to the app in-process (enter it with `async with`)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with client_of(app) as http:
        yield http


async def drain(app: FastAPI) -> None:
    """Number what the outbox holds (the drain a commit triggers, done now)."""
    await app.state.context.feed.drainer.drain()


@pytest.fixture
def whoop() -> Iterator[respx.MockRouter]:
    """WHOOP, mocked: any call not routed by the test fails it."""
    with respx.mock(base_url=WHOOP, assert_all_called=False) as router:
        yield router


def state_of(app: FastAPI) -> ApiState:
    """The api's state."""
    state: ApiState = app.state.api
    return state


def auth(user_id: uuid.UUID, **claims: Any) -> dict[str, str]:
    """A bearer header for a user."""
    token = mint_token(user_id, SECRET, audience=claims.pop("audience", AUDIENCE), **claims)
    return {"Authorization": f"Bearer {token}"}


async def connect_user(
    app: FastAPI, user_id: uuid.UUID | None = None, *, whoop_user_id: int | None = None
) -> tuple[uuid.UUID, int]:
    """A user with an active connection whose token is valid for a day."""
    user_id = user_id or uuid.uuid4()
    whoop_user_id = whoop_user_id or int(uuid.uuid4().int % 2_000_000_000)
    state = state_of(app)
    async with state.session_factory() as session:
        await ConnectionRepository(session).save(
            user_id=user_id,
            whoop_user_id=whoop_user_id,
            access_token_enc=state.cipher.encrypt("access-" + str(user_id)),
            refresh_token_enc=state.cipher.encrypt("refresh-" + str(user_id)),
            expires_at=datetime.now(UTC) + timedelta(days=1),
            scopes="read:recovery read:cycles read:workout read:sleep read:profile offline",
        )
        await session.commit()
    return user_id, whoop_user_id


CALLBACK = "/api/v1/whoop/callback"
ALL_READS = "offline read:recovery read:cycles read:sleep read:workout"


def mock_whoop_account(
    whoop: respx.MockRouter,
    whoop_user_id: int,
    *,
    access_token: str | None = None,
    refresh_token: str | None = None,
    scope: str = ALL_READS,
) -> respx.Route:
    """WHOOP's token endpoint (the code exchange, its route) and the profile of `whoop_user_id`."""
    exchange = whoop.post("/oauth/oauth2/token").respond(
        json={
            "access_token": access_token or f"access-of-{whoop_user_id}",
            "refresh_token": refresh_token or f"refresh-of-{whoop_user_id}",
            "expires_in": 3600,
            "scope": scope,
            "token_type": "bearer",
        }
    )
    profile = {
        "user_id": whoop_user_id,
        "email": "b@example.com",
        "first_name": "B",
        "last_name": "B",
    }
    validate(profile, "UserBasicProfile")
    whoop.get("/developer/v2/user/profile/basic").respond(json=profile)
    return exchange


async def state_for(client: httpx.AsyncClient, user: uuid.UUID) -> str:
    """A connect flow's state for `user`."""
    response = await client.get("/api/v1/whoop/connect", headers=auth(user))
    assert response.status_code == 200
    state: str = response.json()["state"]
    return state


async def seed(
    app: FastAPI, user_id: uuid.UUID, data_type: DataType, objects: list[dict[str, Any]]
) -> None:
    """Store WHOOP objects in the cache."""
    async with state_of(app).session_factory() as session:
        await RecordRepository(session, data_type).upsert(user_id, objects)
        await session.commit()


async def mark_synced(
    app: FastAPI,
    user_id: uuid.UUID,
    data_type: DataType,
    ago: timedelta,
    status: SyncStatus = SyncStatus.SUCCESS,
    error: str | None = None,
) -> datetime:
    """Record a sync attempt that started `ago` before now; its start time."""
    at = datetime.now(UTC) - ago
    async with state_of(app).session_factory() as session:
        await SyncLogRepository(session).record(
            Attempt(user_id, data_type, Trigger.READ, status, 1, at, 10, error)
        )
        await session.commit()
    return at


def objects(data_type: DataType, whoop_user_id: int, count: int) -> list[dict[str, Any]]:
    """`count` WHOOP objects of a type, one a day back from yesterday, validated."""
    base = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
    made: list[dict[str, Any]] = []
    for i in range(count):
        moment = base - timedelta(days=i)
        cycle_id = 900_000 + (whoop_user_id % 10_000) * 100 + i
        if data_type is DataType.CYCLE:
            obj = samples.cycle(cycle_id=cycle_id, start=moment, whoop_user_id=whoop_user_id)
        elif data_type is DataType.SLEEP:
            obj = samples.sleep(start=moment, cycle_id=cycle_id, whoop_user_id=whoop_user_id)
        elif data_type is DataType.RECOVERY:
            obj = samples.recovery(
                cycle_id=cycle_id,
                sleep_id=uuid.uuid4(),
                created_at=moment,
                whoop_user_id=whoop_user_id,
            )
        else:
            obj = samples.workout(start=moment, whoop_user_id=whoop_user_id)
        made.append(obj)
    return made


def collection_body(data_type: DataType, records: list[dict[str, Any]]) -> dict[str, Any]:
    """A WHOOP collection page, checked against WHOOP's OpenAPI document."""
    body = {"records": records, "next_token": None}
    validate({"records": records}, COLLECTIONS[data_type][1])
    return body


def mock_collection(
    router: respx.MockRouter, data_type: DataType, records: list[dict[str, Any]]
) -> respx.Route:
    """WHOOP's collection endpoint of a type, answering one page."""
    path = COLLECTIONS[data_type][0]
    return router.get(f"/developer{path}").respond(json=collection_body(data_type, records))
