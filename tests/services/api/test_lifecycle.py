"""Lifecycle changes (SPEC §3.5), switching accounts and the backfill's progress (SPEC §3.2), on
both backends: the connection's life and the backfill's end are numbered with the record changes
and reach /changes, SSE and pushes; linking another account removes the old one's records, each
with a `deleted` change; the backfill's progress moves while it runs, and a type that keeps
failing backs off and is then given up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Iterator
from datetime import timedelta
from typing import Any, cast

import httpx
import orjson
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import update
from sse_starlette import ServerSentEvent

from common.db.models import WhoopConnection
from common.db.repositories import RecordRepository, SyncLogRepository
from common.db.types import utcnow
from common.feed.push import deliver_user
from common.feed.pusher import Pusher
from common.sync.backfill import MAX_FAILURES, restart_failed
from common.sync.jobs.backfill import run_backfill
from common.types import DataType
from common.whoop.errors import WhoopReauthorizationRequired
from services.api.routes.feed import _stream
from tests.services.api.conftest import (
    CALLBACK,
    COLLECTIONS,
    PUSH_RECEIVER,
    PUSH_SECRET,
    auth,
    collection_body,
    connect_user,
    drain,
    each_backend,
    mark_synced,
    mock_whoop_account,
    objects,
    seed,
    state_for,
    state_of,
)

LIFECYCLE = {
    "connection.created",
    "connection.reauthorization_required",
    "connection.revoked",
    "backfill.completed",
    "user.erased",
}


settings = each_backend(
    app_webhook_url=PUSH_RECEIVER, app_webhook_secret=PUSH_SECRET, backfill_days=60
)


@pytest.fixture
def whoop() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def mock_collections(
    whoop: respx.MockRouter, whoop_user: int, count: int, *, but: DataType | None = None
) -> None:
    """Every collection of WHOOP (`but` one) answering `count` records in one page."""
    for data_type, (path, _) in COLLECTIONS.items():
        if data_type is but:
            continue
        body = collection_body(data_type, objects(data_type, whoop_user, count))
        whoop.get(f"https://whoop.test/developer{path}").respond(json=body)


async def link(
    client: httpx.AsyncClient, whoop: respx.MockRouter, user: uuid.UUID, whoop_user: int
) -> None:
    """The POST callback for `user` and WHOOP account `whoop_user`."""
    with respx.mock(base_url="https://whoop.test", assert_all_called=False) as account:
        mock_whoop_account(account, whoop_user)
        state = await state_for(client, user)
        response = await client.post(
            CALLBACK, json={"code": "c0de", "state": state}, headers=auth(user)
        )
    assert response.status_code == 200, response.text


async def feed(client: httpx.AsyncClient, user: uuid.UUID) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/smart/changes", params={"limit": 500}, headers=auth(user))
    assert answer.status_code == 200, answer.text
    changes: list[dict[str, Any]] = answer.json()["changes"]
    return changes


def name(change: dict[str, Any]) -> str:
    return str(
        change["action"]
        if change["data_type"] is None
        else f"{change['data_type']}.{change['action']}"
    )


async def test_lifecycle_changes_reach_changes_sse_and_pushes(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = uuid.uuid4(), uuid.uuid4().int % 10**9
    await link(client, whoop, user, whoop_user)
    mock_collections(whoop, whoop_user, 2)
    context = app.state.context
    await run_backfill(context, user)
    # WHOOP refuses the refresh of an expired token: reauthorization required.
    async with context.session_factory() as session:
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user)
            .values(expires_at=utcnow() - timedelta(days=1))
        )
        await session.commit()
    whoop.post("https://whoop.test/oauth/oauth2/token").respond(
        400, json={"error": "invalid_grant"}
    )
    with pytest.raises(WhoopReauthorizationRequired):
        await context.tokens(user).access_token()
    whoop.delete("https://whoop.test/developer/v2/user/access").respond(204)
    assert (await client.delete("/api/v1/whoop/connection", headers=auth(user))).status_code == 200
    await drain(app)

    changes = await feed(client, user)
    names = [name(c) for c in changes]
    assert [n for n in names if n in LIFECYCLE] == [
        "connection.created",
        "backfill.completed",
        "connection.reauthorization_required",
        "connection.revoked",
    ]
    assert names.index("backfill.completed") > max(
        i for i, n in enumerate(names) if n.endswith(".upserted")
    )
    for change in changes:
        if change["action"] in LIFECYCLE:
            assert (change["data_type"], change["id"]) == (None, None)
            assert change["updated_at"] is not None
    [completed] = [c for c in changes if c["action"] == "backfill.completed"]
    assert completed["record"]["status"] == "done"
    assert completed["record"]["records"] == {"recovery": 2, "sleep": 2, "cycle": 2, "workout": 2}

    streamed: list[str] = []
    events = cast(
        AsyncGenerator[ServerSentEvent, None],
        _stream(context.session_factory, context.feed.notifier, user, 0),
    )
    async with asyncio.timeout(10):
        async for event in events:
            streamed.append(str(event.event))
            if len(streamed) == len(changes):
                break
    await events.aclose()
    assert streamed == names

    received = whoop.post(PUSH_RECEIVER).respond(204)
    assert await deliver_user(context, Pusher(context), user) == len(changes)
    assert [orjson.loads(c.request.content)["type"] for c in received.calls] == names


async def test_linking_another_account_removes_the_old_ones_records_with_a_deleted_change_each(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, first = await connect_user(app)
    for data_type in DataType:
        await seed(app, user, data_type, objects(data_type, first, 2))
        await mark_synced(app, user, data_type, timedelta(minutes=1))
    await drain(app)
    old_ids = {(c["data_type"], c["id"]) for c in await feed(client, user)}
    second = uuid.uuid4().int % 10**9

    await link(client, whoop, user, second)
    await drain(app)

    async with state_of(app).session_factory() as session:
        for data_type in DataType:
            assert await RecordRepository(session, data_type).count(user) == 0
        assert await SyncLogRepository(session).for_user(user) == {}
        assert await SyncLogRepository(session).history(user) == []
    changes = await feed(client, user)
    deleted = {(c["data_type"], c["id"]) for c in changes if c["action"] == "deleted"}
    assert deleted == old_ids
    assert len(old_ids) == 8
    tail = [(c["action"], c["data_type"]) for c in changes if c["action"] in LIFECYCLE]
    assert tail == [("connection.revoked", None), ("connection.created", None)]
    connection = (await client.get("/api/v1/whoop/connection", headers=auth(user))).json()
    assert connection["whoop_user_id"] == second
    assert connection["backfill"]["status"] == "pending"

    # A later link of the first account, by anyone, backfills it afresh: nothing refuses it.
    other = uuid.uuid4()
    await link(client, whoop, other, first)
    for data_type in DataType:
        await seed(app, other, data_type, objects(data_type, first, 2))
    async with state_of(app).session_factory() as session:
        for data_type in DataType:
            assert await RecordRepository(session, data_type).count(other) == 2


async def test_backfill_progress_moves_while_it_runs(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = uuid.uuid4(), uuid.uuid4().int % 10**9
    await link(client, whoop, user, whoop_user)
    before = (await client.get("/api/v1/whoop/connection", headers=auth(user))).json()["backfill"]
    assert before == {
        "status": "pending",
        "days": 0,
        "started_at": None,
        "finished_at": None,
        "records": {"recovery": 0, "sleep": 0, "cycle": 0, "workout": 0},
        "error": None,
    }
    mock_collections(whoop, whoop_user, 3, but=DataType.SLEEP)
    sleeps = objects(DataType.SLEEP, whoop_user, 30)
    path = f"https://whoop.test/developer{COLLECTIONS[DataType.SLEEP][0]}"
    seen: list[dict[str, Any]] = []

    async def second_page(request: httpx.Request) -> httpx.Response:
        answer = await client.get("/api/v1/whoop/connection", headers=auth(user))
        seen.append(answer.json()["backfill"])
        return httpx.Response(200, json=collection_body(DataType.SLEEP, sleeps[25:]))

    whoop.get(path, params={"nextToken": "page-2"}).mock(side_effect=second_page)
    first = collection_body(DataType.SLEEP, sleeps[:25]) | {"next_token": "page-2"}
    whoop.get(path).respond(json=first)
    context = app.state.context
    await run_backfill(context, user)

    [during] = seen  # asked while the second page of sleeps was on its way
    assert during["status"] == "running"
    assert during["days"] == 60
    assert during["started_at"] is not None
    assert during["finished_at"] is None
    assert during["records"] == {"recovery": 0, "sleep": 25, "cycle": 3, "workout": 0}
    after = (await client.get("/api/v1/whoop/connection", headers=auth(user))).json()["backfill"]
    assert after["status"] == "done"
    assert after["records"] == {"recovery": 3, "sleep": 30, "cycle": 3, "workout": 3}
    assert after["finished_at"] is not None


async def test_a_type_that_keeps_failing_backs_off_then_fails_the_backfill(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user, whoop_user = uuid.uuid4(), uuid.uuid4().int % 10**9
    await link(client, whoop, user, whoop_user)
    mock_collections(whoop, whoop_user, 1, but=DataType.WORKOUT)
    path = f"https://whoop.test/developer{COLLECTIONS[DataType.WORKOUT][0]}"
    refused = whoop.get(path).respond(403, json={"message": "forbidden"})
    context = app.state.context

    async def run() -> dict[str, Any]:
        await run_backfill(context, user)
        answer = await client.get("/api/v1/whoop/connection", headers=auth(user))
        backfill: dict[str, Any] = answer.json()["backfill"]
        return backfill

    first = await run()
    assert first["status"] == "pending"
    assert first["records"] == {"recovery": 1, "sleep": 1, "cycle": 1, "workout": 0}
    calls = refused.call_count
    again = await run()  # backing off: the failing type is not asked again, nor are the others
    assert refused.call_count == calls
    assert again["status"] == "pending"
    for _ in range(MAX_FAILURES - 1):
        await _retry_now(app, user)
        last = await run()
    assert refused.call_count == calls * MAX_FAILURES
    assert last["status"] == "failed"
    assert "workout" in last["error"]
    assert last["finished_at"] is not None
    async with context.session_factory() as session:
        due = await session.scalar(
            WhoopConnection.__table__.select()
            .with_only_columns(WhoopConnection.backfill_pending_since)
            .where(WhoopConnection.user_id == user)
        )
    assert due is None  # no longer due: reconciliation leaves it until the audit or a relink
    await drain(app)
    [completed] = [c for c in await feed(client, user) if c["action"] == "backfill.completed"]
    assert completed["record"]["status"] == "failed"
    # The user's next audit asks for it again, from the start.
    async with context.session_factory() as session:
        assert await restart_failed(session, user)
        await session.commit()
    restarted = (await client.get("/api/v1/whoop/connection", headers=auth(user))).json()
    assert restarted["backfill"]["status"] == "pending"
    assert restarted["backfill"]["error"] is None


async def _retry_now(app: FastAPI, user: uuid.UUID) -> None:
    """Move the failing type's next try to now (its back-off has passed)."""
    async with state_of(app).session_factory() as session:
        row = await session.get(WhoopConnection, user)
        assert row is not None
        assert row.backfill_progress is not None
        progress = orjson.loads(row.backfill_progress)
        progress["retry_at"] = {}
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user)
            .values(backfill_progress=orjson.dumps(progress).decode())
        )
        await session.commit()
