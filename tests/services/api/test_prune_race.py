"""Retention racing readers of the change feed, interleaved deterministically, on both backends: a
prune that commits while a page is being asked for is a 410, never a page with a gap; a live
stream a prune passes ends with `event: cursor_expired`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only
from sse_starlette import ServerSentEvent

from common.db.models import Change
from common.db.repositories import RecordRepository
from common.db.repositories.changes import ChangeRepository
from common.feed.cursor import decode, encode
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


@pytest.fixture
def app(app: FastAPI, empty_database: None) -> FastAPI:
    """The api on a database emptied before and after the test (the horizon is global)."""
    return app


async def _changes(app: FastAPI, user: uuid.UUID, count: int) -> list[int]:
    """`count` workout changes of the user, numbered; their numbers."""
    async with state_of(app).session_factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(
            user, objects(DataType.WORKOUT, 4242, count)
        )
        await session.commit()
    await drain(app)
    async with state_of(app).session_factory() as session:
        page = await ChangeRepository(session).read_page(user, None, 100)
    return [c.seq for c in page.changes]


async def _age(app: FastAPI, through: int) -> None:
    """Make the changes numbered up to `through` older than the retention window."""
    async with state_of(app).session_factory() as session:
        await session.execute(
            update(Change)
            .where(Change.seq <= through)
            .values(changed_at=datetime.now(UTC) - timedelta(days=31))
        )
        await session.commit()


def _engine(app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine = app.state.context.engine
    return engine


async def test_a_prune_committing_as_a_page_is_read_answers_410_never_a_gap(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    seqs = await _changes(app, user, 4)
    first = await client.get("/api/v1/smart/changes", params={"limit": 2}, headers=auth(user))
    cursor = first.json()["next_cursor"]
    assert decode(cursor) == seqs[1]
    await _age(app, seqs[2])  # the prune will delete through the third change
    pruned: list[int] = []

    def prune_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Right before the statement that reads the user's changes, the prune commits (on
        # another connection): the request started before it, its read comes after it.
        reads_changes = "whoop_change.user_id" in statement
        if not pruned and reads_changes and statement.lstrip().upper().startswith("SELECT"):
            pruned.append(await_only(app.state.context.feed.prune()))

    engine = _engine(app).sync_engine
    event.listen(engine, "before_cursor_execute", prune_first)
    try:
        answer = await client.get(
            "/api/v1/smart/changes", params={"cursor": cursor, "limit": 2}, headers=auth(user)
        )
    finally:
        event.remove(engine, "before_cursor_execute", prune_first)

    assert pruned == [3]
    assert answer.status_code == 410, answer.text  # not [the fourth change], skipping the third
    assert answer.json()["error"]["code"] == "cursor_expired"
    restart = await client.get("/api/v1/smart/changes", headers=auth(user))
    assert [decode(c["cursor"]) for c in restart.json()["changes"]] == [seqs[3]]


async def test_a_prune_committing_after_the_page_was_read_leaves_the_next_page_410(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    seqs = await _changes(app, user, 4)
    first = await client.get("/api/v1/smart/changes", params={"limit": 2}, headers=auth(user))
    await _age(app, seqs[2])
    assert await app.state.context.feed.prune(batch=1) == 3  # three committed batches
    answer = await client.get(
        "/api/v1/smart/changes",
        params={"cursor": first.json()["next_cursor"], "limit": 2},
        headers=auth(user),
    )
    assert answer.status_code == 410


async def test_a_live_stream_a_prune_passes_ends_with_cursor_expired(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_routes, "PAGE", 2)
    user = uuid.uuid4()
    seqs = await _changes(app, user, 5)
    context = app.state.context
    stream = cast(
        AsyncGenerator[ServerSentEvent, None],
        feed_routes._stream(state_of(app).session_factory, context.feed.notifier, user, 0),
    )
    try:
        got = [await anext(stream), await anext(stream)]  # the first page
        assert [e.id for e in got] == [encode(s) for s in seqs[:2]]
        await _age(app, seqs[2])
        assert await context.feed.prune() == 3  # commits between the stream's two pages
        expired = await anext(stream)
        assert expired.event == "cursor_expired"
        assert '"cursor_expired"' in str(expired.data)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    finally:
        await stream.aclose()


async def test_a_stream_resumed_from_a_pruned_last_event_id_is_410(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    seqs = await _changes(app, user, 3)
    await _age(app, seqs[1])
    assert await app.state.context.feed.prune() == 2
    answer = await client.get(
        "/api/v1/smart/events", headers={**auth(user), "Last-Event-ID": encode(seqs[0])}
    )
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "cursor_expired"
