"""A deleted change carries its time (the tombstone's `deleted_at`) as `updated_at` wherever it is
read: `/changes`, the event stream and the push, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import cast

import httpx
import orjson
from fastapi import FastAPI
from sse_starlette import ServerSentEvent

from common.db.models import Change, WorkoutTombstone
from common.db.repositories import RecordRepository
from common.feed.cursor import decode
from common.feed.push import payload
from common.types import DataType
from services.api.routes import feed as feed_routes
from tests.services.api.conftest import (
    auth,
    drain,
    each_backend,
    objects,
    state_of,
)

settings = each_backend()


async def test_a_deleted_change_carries_the_deletions_time_in_changes_stream_and_push(
    app: FastAPI,
) -> None:
    user = uuid.uuid4()
    workout = objects(DataType.WORKOUT, 5150, 1)[0]
    factory = state_of(app).session_factory
    async with factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(user, [workout])
        await session.commit()
    async with factory() as session:
        await RecordRepository(session, DataType.WORKOUT).delete(user, uuid.UUID(workout["id"]))
        await session.commit()
    await drain(app)
    async with factory() as session:
        tombstone = await session.get(WorkoutTombstone, uuid.UUID(workout["id"]))
    assert tombstone is not None
    deleted_at = tombstone.deleted_at

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        body = (await http.get("/api/v1/smart/changes", headers=auth(user))).json()
    listed = body["changes"][-1]
    assert (listed["action"], listed["id"], listed["record"]) == ("deleted", workout["id"], None)
    assert datetime.fromisoformat(listed["updated_at"]) == deleted_at

    # Live, from the upsert on (the horizon another test's prune left may be past 0).
    upserted = decode(body["changes"][0]["cursor"])
    stream = cast(
        AsyncGenerator[ServerSentEvent, None],
        feed_routes._stream(factory, app.state.context.feed.notifier, user, upserted),
    )
    try:
        live = await anext(stream)
    finally:
        await stream.aclose()
    assert live.event == "workout.deleted"
    streamed = orjson.loads(str(live.data))
    assert datetime.fromisoformat(streamed["updated_at"]) == deleted_at

    async with factory() as session:
        change = await session.get(Change, decode(listed["cursor"]))
    assert change is not None
    pushed = orjson.loads(payload(change))
    assert (pushed["type"], pushed["id"], pushed["record"]) == (
        "workout.deleted",
        workout["id"],
        None,
    )
    assert datetime.fromisoformat(pushed["updated_at"]) == deleted_at
