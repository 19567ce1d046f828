"""GET /api/v1/smart/changes: pages in order, cursors, expiry and isolation, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from common.db.models import Change
from common.db.repositories import RecordRepository
from common.feed.cursor import MAX_SEQ, decode, encode
from common.types import DataType
from tests.services.api.conftest import (
    auth,
    drain,
    each_backend,
    objects,
    state_of,
)

settings = each_backend()


async def _write(app: FastAPI, user: uuid.UUID, data_type: DataType, items: list[Any]) -> None:
    async with state_of(app).session_factory() as session:
        await RecordRepository(session, data_type).upsert(user, items)
        await session.commit()
    await drain(app)


async def _all(client: httpx.AsyncClient, user: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        answer = await client.get("/api/v1/smart/changes", params=params, headers=auth(user))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += body["changes"]
        params["cursor"] = body["next_cursor"]
        if not body["has_more"]:
            return seen


async def test_pages_follow_cursors_oldest_first(app: FastAPI, client: httpx.AsyncClient) -> None:
    user, whoop_user = uuid.uuid4(), 4242
    sleeps = objects(DataType.SLEEP, whoop_user, 5)
    await _write(app, user, DataType.SLEEP, sleeps)
    workouts = objects(DataType.WORKOUT, whoop_user, 2)
    await _write(app, user, DataType.WORKOUT, workouts)
    changes = await _all(client, user, limit=2)
    assert [c["id"] for c in changes] == [s["id"] for s in sleeps] + [w["id"] for w in workouts]
    first = changes[0]
    assert first["data_type"] == "sleep"
    assert first["action"] == "upserted"
    assert first["record"] == sleeps[0]
    assert datetime.fromisoformat(first["updated_at"]) == datetime.fromisoformat(
        sleeps[0]["updated_at"]
    )
    assert datetime.fromisoformat(first["changed_at"]).tzinfo is not None
    seqs = [decode(c["cursor"]) for c in changes]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 7


async def test_next_cursor_of_a_short_page_yields_only_later_changes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    await _write(app, user, DataType.WORKOUT, objects(DataType.WORKOUT, 77, 1))
    body = (await client.get("/api/v1/smart/changes", headers=auth(user))).json()
    assert len(body["changes"]) == 1
    assert body["has_more"] is False
    again = await client.get(
        "/api/v1/smart/changes", params={"cursor": body["next_cursor"]}, headers=auth(user)
    )
    assert again.json()["changes"] == []
    async with state_of(app).session_factory() as session:
        await RecordRepository(session, DataType.WORKOUT).delete_all(user)
        await session.commit()
    await drain(app)
    later = await client.get(
        "/api/v1/smart/changes", params={"cursor": body["next_cursor"]}, headers=auth(user)
    )
    assert [(c["action"], c["record"]) for c in later.json()["changes"]] == [("deleted", None)]


async def test_another_users_changes_stay_hidden(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await _write(app, alice, DataType.WORKOUT, objects(DataType.WORKOUT, 11, 2))
    assert await _all(client, bob, limit=100) == []
    assert len(await _all(client, alice, limit=100)) == 2


@pytest.mark.parametrize(
    "params",
    [{"cursor": "not-a-cursor"}, {"cursor": "Yzox"[:-1]}, {"limit": 0}, {"limit": 501}],
)
async def test_malformed_cursor_or_limit_is_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    answer = await client.get("/api/v1/smart/changes", params=params, headers=auth(uuid.uuid4()))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("where", ["cursor", "Last-Event-ID"])
async def test_a_cursor_past_a_bigint_is_422_not_an_overflow(
    client: httpx.AsyncClient, where: str
) -> None:
    user, overflow = uuid.uuid4(), encode(9_999_999_999_999_999_999)
    if where == "cursor":
        answer = await client.get(
            "/api/v1/smart/changes", params={"cursor": overflow}, headers=auth(user)
        )
    else:
        headers = auth(user) | {"Last-Event-ID": overflow}
        answer = await client.get("/api/v1/smart/events", headers=headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert "out of range" in answer.json()["error"]["message"]


async def test_the_largest_cursor_reads_an_empty_page(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/api/v1/smart/changes", params={"cursor": encode(MAX_SEQ)}, headers=auth(uuid.uuid4())
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"changes": [], "next_cursor": encode(MAX_SEQ), "has_more": False}


async def test_cursor_older_than_retention_is_410(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = uuid.uuid4()
    await _write(app, user, DataType.WORKOUT, objects(DataType.WORKOUT, 12, 2))
    changes = await _all(client, user, limit=100)
    async with state_of(app).session_factory() as session:
        await session.execute(
            update(Change)
            .where(Change.seq == decode(changes[1]["cursor"]))
            .values(changed_at=datetime.now(UTC) - timedelta(days=31))
        )
        await session.commit()
    assert await app.state.context.feed.prune() >= 1
    expired = await client.get(
        "/api/v1/smart/changes", params={"cursor": changes[0]["cursor"]}, headers=auth(user)
    )
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "cursor_expired"
    kept = await client.get(
        "/api/v1/smart/changes", params={"cursor": changes[1]["cursor"]}, headers=auth(user)
    )
    assert kept.status_code == 200


async def test_changes_need_a_bearer(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/smart/changes", params={"cursor": encode(0)})
    assert answer.status_code == 401
