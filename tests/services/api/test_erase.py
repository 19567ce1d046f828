"""Erase (SPEC §3.5) through DELETE /api/v1/whoop/connection?purge=true, on both backends: no
table keeps the user's WHOOP data, the feed keeps only `user.erased`, a pending push is never
sent, the receipt counts what went; and a job in flight when the erase commits writes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import respx
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from common.db.models import AppDelivery, Base, Change, WebhookEvent
from common.db.repositories import RecordRepository
from common.feed.lifecycle import USER_ERASED
from common.types import DataType
from services.api.routes.feed import _stream
from tests.services.api.conftest import (
    PUSH_RECEIVER,
    PUSH_SECRET,
    auth,
    connect_user,
    drain,
    each_backend,
    mark_synced,
    objects,
    seed,
    state_of,
)

settings = each_backend(app_webhook_url=PUSH_RECEIVER, app_webhook_secret=PUSH_SECRET)


async def _populate(
    app: FastAPI, client: httpx.AsyncClient, user: uuid.UUID, whoop_user: int
) -> None:
    """Three records of each type, sync state, one deleted record (a tombstone), webhook events,
    an open connect flow, and the feed with its pending pushes."""
    for data_type in DataType:
        await seed(app, user, data_type, objects(data_type, whoop_user, 3))
        await mark_synced(app, user, data_type, timedelta(minutes=1))
    async with state_of(app).session_factory() as session:
        workouts = RecordRepository(session, DataType.WORKOUT)
        [gone] = await workouts.read(user, limit=1)
        # End the read first: on SQLite a read transaction that then writes cannot wait for the
        # drain that the seed's commit started, and fails at once ("database is locked").
        await session.commit()
        await workouts.delete(user, uuid.UUID(gone["id"]))
        for _ in range(2):
            await session.execute(
                insert(WebhookEvent).values(
                    trace_id=str(uuid.uuid4()),
                    event_type="sleep.updated",
                    whoop_user_id=whoop_user,
                    record_id=str(uuid.uuid4()),
                    payload=f'{{"user_id": {whoop_user}, "type": "sleep.updated"}}',
                    status="done",
                )
            )
        await session.commit()
    assert (await client.get("/api/v1/whoop/connect", headers=auth(user))).status_code == 200
    await drain(app)


def _holds(value: Any, user: uuid.UUID, whoop_user: int) -> bool:
    if isinstance(value, uuid.UUID):
        return value == user
    if isinstance(value, int) and not isinstance(value, bool):
        return value == whoop_user
    if isinstance(value, str):
        return str(user) in value or str(whoop_user) in value
    return False


async def _traces(
    app: FastAPI, user: uuid.UUID, whoop_user: int
) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the schema holding the user's id or WHOOP id anywhere."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with state_of(app).session_factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                if any(_holds(v, user, whoop_user) for v in row.values()):
                    found.setdefault(table.name, []).append(dict(row))
    return found


async def test_erase_leaves_no_table_holding_the_users_whoop_data(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, whoop_user = await connect_user(app)
    other, other_whoop = await connect_user(app)
    await _populate(app, client, user, whoop_user)
    await _populate(app, client, other, other_whoop)
    before = await _traces(app, user, whoop_user)
    assert {"whoop_sleep", "whoop_change", "whoop_app_delivery", "whoop_webhook_event"} <= set(
        before
    )
    others_before = await _traces(app, other, other_whoop)
    pending = [d for d in before["whoop_app_delivery"] if d["status"] == "pending"]
    with respx.mock(base_url="https://whoop.test", assert_all_called=False) as whoop:
        revoke = whoop.delete("/developer/v2/user/access").respond(204)
        response = await client.delete(
            "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(user)
        )
    assert response.status_code == 200, response.text
    assert revoke.call_count == 1
    body = response.json()
    assert (body["status"], body["purged"], body["revoked_at_whoop"]) == ("revoked", True, True)
    receipt = body["receipt"]
    assert receipt["user_id"] == str(user)
    assert receipt["erased_at"]
    deleted = receipt["deleted"]
    assert deleted["records"] == {"recovery": 3, "sleep": 3, "cycle": 3, "workout": 2}
    assert deleted["tombstones"] == 1
    assert deleted["sync_states"] == 4
    assert deleted["sync_attempts"] == len(before["whoop_sync_attempt"])
    assert deleted["webhook_event_payloads"] == 2
    assert deleted["changes"] == len(before["whoop_change"])
    assert deleted["pending_pushes"] == len(pending)
    assert deleted["connections"] == 1
    assert deleted["oauth_states"] == 1
    await drain(app)

    left = await _traces(app, user, whoop_user)
    # What stays is the one `user.erased` change and its push.
    [erased] = left.pop("whoop_change")
    assert (erased["action"], erased["data_type"], erased["record_id"]) == (USER_ERASED, None, None)
    [push] = left.pop("whoop_app_delivery")
    assert (push["change_seq"], push["status"]) == (erased["seq"], "pending")
    assert left == {}
    assert await _traces(app, other, other_whoop) == others_before  # nobody else's

    changes = (await client.get("/api/v1/smart/changes", headers=auth(user))).json()["changes"]
    assert [(c["action"], c["data_type"], c["id"], c["record"]) for c in changes] == [
        (USER_ERASED, None, None, None)
    ]
    assert changes[0]["updated_at"] is not None
    for path in ("/api/v1/smart/sleep", "/api/v1/smart/sync-status", "/api/v1/whoop/connection"):
        gone = await client.get(path, headers=auth(user))
        assert gone.status_code == 404, path
        assert gone.json()["error"]["code"] == "not_connected"


async def test_a_pending_push_is_never_sent_after_the_erase(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, whoop_user = await connect_user(app)
    await seed(app, user, DataType.SLEEP, objects(DataType.SLEEP, whoop_user, 2))
    await drain(app)
    with respx.mock(base_url="https://whoop.test", assert_all_called=False) as whoop:
        whoop.delete("/developer/v2/user/access").respond(204)
        await client.delete(
            "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(user)
        )
    await drain(app)
    async with state_of(app).session_factory() as session:
        pushes = (
            await session.execute(
                select(AppDelivery.status, Change.action)
                .join(Change, Change.seq == AppDelivery.change_seq)
                .where(AppDelivery.user_id == user)
            )
        ).all()
    # Only the erase itself is left to push: the sleeps' pushes are gone before a worker saw them.
    assert [tuple(p) for p in pushes] == [("pending", USER_ERASED)]


async def test_erase_of_a_user_without_connection_is_not_connected(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete(
        "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(uuid.uuid4())
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_connected"


async def test_an_open_event_stream_of_the_user_ends_with_user_erased(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, _ = await connect_user(app)
    context = app.state.context
    async with context.session_factory() as session:
        head = int(await session.scalar(select(func.max(Change.seq))) or 0)
    stream = _stream(context.session_factory, context.feed.notifier, user, head)

    async def listen() -> list[str]:
        return [str(event.event) async for event in stream]

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.2)  # the stream is open and waiting for a change
    with respx.mock(base_url="https://whoop.test", assert_all_called=False) as whoop:
        whoop.delete("/developer/v2/user/access").respond(204)
        await client.delete(
            "/api/v1/whoop/connection", params={"purge": "true"}, headers=auth(user)
        )
    await drain(app)
    async with asyncio.timeout(30):
        events = await listening  # the stream ended by itself
    assert events == [USER_ERASED]
