"""The operators' API (SPEC §3.6) on both backends: off without the token, 401 for a wrong one,
the overview's counts from durable rows, a user's page, sync now and replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from arq.connections import ArqRedis
from fastapi import FastAPI

from common.budget import budget_usage
from common.db.models import WebhookEvent
from common.db.repositories.ops import AUDIT_MISS, RECONCILE_FAILURE, WEBHOOK_REFUSAL, OpsRepository
from common.ratelimit import Priority
from common.types import DataType, SyncStatus
from tests.services.api.admin_helpers import ADMIN, ADMIN_AUTH, add_event, add_failed_push
from tests.services.api.conftest import (
    auth,
    connect_user,
    each_backend,
    make_settings,
    mark_synced,
    objects,
    running,
    seed,
    state_of,
)

# The api with an admin token, on each backend.
settings = each_backend(admin_token=ADMIN)


async def _overview(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/api/v1/admin/overview", headers=ADMIN_AUTH)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_every_admin_route_is_404_without_the_token(
    pg_url: str, redis_url: str, redis: aioredis.Redis
) -> None:
    async for app in running(make_settings(pg_url, redis_url)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            answers = [
                await client.get("/api/v1/admin/overview", headers=ADMIN_AUTH),
                await client.get(f"/api/v1/admin/users/{uuid.uuid4()}", headers=ADMIN_AUTH),
                await client.post(f"/api/v1/admin/users/{uuid.uuid4()}/sync", headers=ADMIN_AUTH),
                await client.post("/api/v1/admin/replay", json={"events": "failed"}),
                await client.delete(f"/api/v1/admin/users/{uuid.uuid4()}", headers=ADMIN_AUTH),
                await client.get("/console"),
                await client.post("/console/sign-in", content=f"token={ADMIN}"),
            ]
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN}x"}],
    ids=["missing", "wrong", "longer"],
)
async def test_refuses_a_missing_or_wrong_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await client.get("/api/v1/admin/overview", headers=headers)

    assert answer.status_code == 401
    assert answer.json() == {
        "status": "error",
        "error": {"code": "unauthorized", "message": "Missing or wrong admin token"},
    }
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_user_bearer_is_not_an_admin_token(client: httpx.AsyncClient, app: FastAPI) -> None:
    from tests.services.api.conftest import auth

    answer = await client.get("/api/v1/admin/overview", headers=auth(uuid.uuid4()))

    assert answer.status_code == 401


async def test_overview_counts_the_inbox_pushes_and_incidents(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    factory = state_of(app).session_factory
    before = await _overview(client)
    user_id, whoop_user_id = await connect_user(app)

    await add_event(factory, whoop_user_id, status="pending", error=None)
    await add_event(factory, whoop_user_id, status="pending", parked=True)
    await add_event(factory, whoop_user_id, status="failed")
    await add_failed_push(factory, user_id, whoop_user_id)
    async with factory() as session:
        ops = OpsRepository(session)
        await ops.note(AUDIT_MISS, "sleep", count=2)
        await ops.note(RECONCILE_FAILURE, "audit")
        await ops.note(RECONCILE_FAILURE, "audit", at=datetime.now(UTC) - timedelta(days=2))
        await ops.note(WEBHOOK_REFUSAL)
        await session.commit()
    after = await _overview(client)

    assert after["inbox"]["pending"] == before["inbox"]["pending"] + 1
    assert after["inbox"]["parked"] == before["inbox"]["parked"] + 1
    assert after["inbox"]["failed"] == before["inbox"]["failed"] + 1
    assert after["inbox"]["oldest_pending_age_seconds"] >= 300
    assert after["pushes"]["failed"] == before["pushes"]["failed"] + 1
    assert after["audit_misses_24h"] == before["audit_misses_24h"] + 2
    assert after["reconcile_failures_24h"] == before["reconcile_failures_24h"] + 1
    assert after["webhook_channel"]["refusals_last_hour"] == (
        before["webhook_channel"]["refusals_last_hour"] + 1
    )
    assert after["whoop_budget"]["users_connected"] == before["whoop_budget"]["users_connected"] + 1


async def test_overview_budget_reports_the_shared_limiter_and_a_forecast(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    state = state_of(app)
    for _ in range(7):
        await state.whoop.limiter.acquire(Priority.BACKGROUND)
    budget = (await _overview(client))["whoop_budget"]

    assert budget["minute_limit"] == 100
    assert budget["minute_used"] == 7
    assert budget["minute_left"] == 93
    assert budget["day_used"] == 7
    assert budget["day_limit"] == 10000
    async with state.session_factory() as session:
        usage = await budget_usage(state.whoop.limiter, session)
    assert budget["day_forecast"] == usage.day_forecast == 14  # the last hour's 7, for an hour more
    assert budget["users_carried"] == usage.users_carried
    assert budget["users_connected"] == usage.users_connected


async def test_user_page_by_uuid_and_by_whoop_id(client: httpx.AsyncClient, app: FastAPI) -> None:
    user_id, whoop_user_id = await connect_user(app)
    await mark_synced(app, user_id, DataType.SLEEP, timedelta(minutes=3))
    await mark_synced(
        app, user_id, DataType.CYCLE, timedelta(minutes=2), SyncStatus.FAILED, "WHOOP 503"
    )
    event_id = await add_event(state_of(app).session_factory, whoop_user_id, status="failed")

    by_uuid = await client.get(f"/api/v1/admin/users/{user_id}", headers=ADMIN_AUTH)
    by_whoop = await client.get(f"/api/v1/admin/users/whoop:{whoop_user_id}", headers=ADMIN_AUTH)

    assert by_uuid.status_code == 200, by_uuid.text
    assert by_whoop.json() == by_uuid.json()
    page = by_uuid.json()
    assert page["connection"]["whoop_user_id"] == whoop_user_id
    assert page["connection"]["status"] == "active"
    assert page["connection"]["backfill"]["status"] == "pending"  # nothing backfilled it yet
    assert page["sync_state"]["sleep"]["sync_status"] == "success"
    assert page["sync_state"]["cycle"]["error_message"] == "WHOOP 503"
    assert page["sync_state"]["workout"]["sync_status"] == "never_synced"
    assert [a["data_type"] for a in page["attempts"]] == ["cycle", "sleep"]
    assert [e["id"] for e in page["events"]] == [event_id]
    assert page["events"][0]["last_error"] == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("ref", "status", "code"),
    [
        ("not-a-user", 422, "validation_error"),
        ("whoop:abc", 422, "validation_error"),
        ("whoop:", 422, "validation_error"),
        ("whoop:987654321987", 404, "not_found"),
        (str(uuid.UUID(int=7)), 404, "not_found"),
    ],
)
async def test_user_page_refuses_unknown_and_malformed_ids(
    client: httpx.AsyncClient, ref: str, status: int, code: str
) -> None:
    answer = await client.get(f"/api/v1/admin/users/{ref}", headers=ADMIN_AUTH)

    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


async def test_sync_now_queues_every_type_at_background_priority(
    client: httpx.AsyncClient, app: FastAPI, redis: aioredis.Redis
) -> None:
    user_id, whoop_user_id = await connect_user(app)

    answer = await client.post(
        f"/api/v1/admin/users/whoop:{whoop_user_id}/sync", headers=ADMIN_AUTH
    )

    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "status": "queued",
        "user_id": str(user_id),
        "types": ["cycle", "sleep", "recovery", "workout"],
    }
    pool = ArqRedis(connection_pool=redis.connection_pool)
    jobs = await pool.queued_jobs()
    assert sorted((j.function, tuple(j.args)) for j in jobs) == sorted(
        ("sync_type", (str(user_id), t, "admin")) for t in ("cycle", "sleep", "recovery", "workout")
    )


async def test_sync_now_of_an_unconnected_user_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.post(f"/api/v1/admin/users/{uuid.uuid4()}/sync", headers=ADMIN_AUTH)

    assert answer.status_code == 404


async def _event(app: FastAPI, event_id: int) -> WebhookEvent:
    async with state_of(app).session_factory() as session:
        event = await session.get(WebhookEvent, event_id)
        assert event is not None
        return event


async def test_replay_reopens_failed_events_and_queues_them(
    client: httpx.AsyncClient, app: FastAPI, redis: aioredis.Redis
) -> None:
    factory = state_of(app).session_factory
    _, whoop_user_id = await connect_user(app)
    failed = await add_event(factory, whoop_user_id, status="failed")
    parked = await add_event(factory, whoop_user_id, status="pending", parked=True)

    answer = await client.post(
        "/api/v1/admin/replay", json={"events": "failed"}, headers=ADMIN_AUTH
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["events_reopened"] >= 1
    assert answer.json()["events_enqueued"] == answer.json()["events_reopened"]
    reopened = await _event(app, failed)
    assert (reopened.status, reopened.attempts) == ("pending", 0)
    assert reopened.enqueued_at is not None
    assert (await _event(app, parked)).parked_at is not None  # only failed ones were asked for
    pool = ArqRedis(connection_pool=redis.connection_pool)
    assert [failed] in [list(j.args) for j in await pool.queued_jobs()]


async def test_replay_of_parked_events_takes_only_parked_ones(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    factory = state_of(app).session_factory
    _, whoop_user_id = await connect_user(app)
    failed = await add_event(factory, whoop_user_id, status="failed")
    parked = await add_event(factory, whoop_user_id, status="pending", parked=True)

    answer = await client.post(
        "/api/v1/admin/replay", json={"events": "parked"}, headers=ADMIN_AUTH
    )

    assert answer.status_code == 200
    assert (await _event(app, parked)).parked_at is None
    assert (await _event(app, failed)).status == "failed"


async def test_replay_of_failed_pushes_makes_them_pending(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    from common.db.models import AppDelivery

    factory = state_of(app).session_factory
    user_id, whoop_user_id = await connect_user(app)
    seq = await add_failed_push(factory, user_id, whoop_user_id)

    answer = await client.post(
        "/api/v1/admin/replay", json={"pushes": "failed"}, headers=ADMIN_AUTH
    )

    assert answer.status_code == 200
    assert answer.json()["push_users"] >= 1
    async with factory() as session:
        delivery = await session.get(AppDelivery, seq)
    assert delivery is not None
    assert delivery.status == "pending"


@pytest.mark.parametrize(
    "body", [{}, {"events": "done"}, {"pushes": "pending"}, {"events": "failed", "x": 1}]
)
async def test_replay_refuses_a_body_that_names_nothing_valid(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    answer = await client.post("/api/v1/admin/replay", json=body, headers=ADMIN_AUTH)

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


async def test_admin_routes_are_documented_with_examples(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    paths = document["paths"]
    for path in (
        "/api/v1/admin/overview",
        "/api/v1/admin/users/{user_id}",
        "/api/v1/admin/users/{user_id}/sync",
        "/api/v1/admin/replay",
    ):
        assert path in paths
    schemas = document["components"]["schemas"]
    for name in ("Overview", "UserPage", "SyncStarted", "ReplayRequest", "ReplayResponse"):
        assert "example" in schemas[name]
    assert not any(p.startswith("/console") for p in paths)


async def test_erase_by_whoop_id_revokes_deletes_and_answers_the_receipt(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user_id, whoop_user_id = await connect_user(app)
    other_id, other_whoop_id = await connect_user(app)
    for user, whoop_user in ((user_id, whoop_user_id), (other_id, other_whoop_id)):
        await seed(app, user, DataType.SLEEP, objects(DataType.SLEEP, whoop_user, 2))
        await mark_synced(app, user, DataType.SLEEP, timedelta(minutes=1))

    with respx.mock(base_url="https://whoop.test", assert_all_called=False) as whoop:
        revoke = whoop.delete("/developer/v2/user/access").respond(204)
        answer = await client.delete(
            f"/api/v1/admin/users/whoop:{whoop_user_id}", headers=ADMIN_AUTH
        )

    assert answer.status_code == 200, answer.text
    assert revoke.call_count == 1
    receipt = answer.json()
    assert (receipt["user_id"], receipt["whoop_user_id"]) == (str(user_id), whoop_user_id)
    assert receipt["revoked_at_whoop"] is True
    assert receipt["deleted"]["records"]["sleep"] == 2
    assert receipt["deleted"]["connections"] == 1
    gone = await client.get("/api/v1/smart/sleep", headers=auth(user_id))
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_connected")
    kept = await client.get("/api/v1/smart/sleep", headers=auth(other_id))
    assert kept.status_code == 200
    assert kept.json()["metadata"]["record_count"] == 2
    again = await client.delete(f"/api/v1/admin/users/{user_id}", headers=ADMIN_AUTH)
    assert again.status_code == 404
