"""GET /api/v1/smart/events over real HTTP: a change committed by another process reaches a
reader of either of two api servers (woken through Redis), and a reader that drops and comes back
with Last-Event-ID to the other server gets what it missed, nothing twice."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI

from common.db.repositories import RecordRepository
from common.feed.cursor import encode
from common.sync.context import SyncContext, build_context
from common.types import DataType
from services.api.app import create_app
from services.api.routes import feed as feed_routes
from tests.common.db import samples
from tests.services.api.conftest import auth, make_settings

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@asynccontextmanager
async def api_server(app: FastAPI) -> AsyncIterator[str]:
    """The api app under uvicorn on a free port; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def two_apis(
    pg_url: str, redis_url: str, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    # Readers look at the table again only when woken: no heartbeat re-read within the test.
    monkeypatch.setattr(feed_routes, "HEARTBEAT", 3600.0)
    settings = make_settings(pg_url, redis_url)
    async with api_server(create_app(settings)) as one, api_server(create_app(settings)) as two:
        yield [one, two]


@pytest.fixture
async def writer(pg_url: str, redis_url: str) -> AsyncIterator[SyncContext]:
    """Another process's context (the worker's): its commits drain and publish there."""
    sync = await build_context(make_settings(pg_url, redis_url))
    yield sync
    await sync.close()


async def write(sync: SyncContext, user: uuid.UUID, obj: dict[str, Any]) -> None:
    async with sync.session_factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(user, [obj])
        await session.commit()


class EventReader:
    """Events of one text/event-stream response, comments skipped."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def take(self, count: int) -> list[dict[str, str]]:
        got: list[dict[str, str]] = []
        event: dict[str, str] = {}
        async with asyncio.timeout(60):
            async for line in self.lines:
                if line == "" and event:
                    got.append(event)
                    event = {}
                    if len(got) == count:
                        return got
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")
        return got


async def test_changes_reach_readers_and_resume_on_the_other_server(
    two_apis: list[str], writer: SyncContext
) -> None:
    user = uuid.uuid4()
    objs = [samples.workout(start=T0 + timedelta(hours=i)) for i in range(5)]
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream(
            "GET", f"{two_apis[0]}/api/v1/smart/events", headers=auth(user)
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await write(writer, user, objs[0])
            await write(writer, user, objs[1])
            first = await EventReader(stream).take(2)
        assert [e["event"] for e in first] == ["workout.upserted"] * 2
        assert [orjson.loads(e["data"])["record"] for e in first] == objs[:2]
        assert [orjson.loads(e["data"])["cursor"] for e in first] == [e["id"] for e in first]
        for obj in objs[2:]:  # while nobody listens
            await write(writer, user, obj)
        resume = auth(user) | {"Last-Event-ID": first[-1]["id"]}
        async with http.stream(
            "GET", f"{two_apis[1]}/api/v1/smart/events", headers=resume
        ) as stream:
            reader = EventReader(stream)
            missed = await reader.take(3)
            await write(writer, user, samples.workout(start=T0 + timedelta(days=1)))
            live = await reader.take(1)
    assert [orjson.loads(e["data"])["record"] for e in missed] == objs[2:]
    assert orjson.loads(live[0]["data"])["record"]["start"] == samples.iso(T0 + timedelta(days=1))
    ids = [e["id"] for e in first + missed + live]
    assert len(set(ids)) == 6


async def test_another_users_changes_are_not_streamed(
    two_apis: list[str], writer: SyncContext
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("GET", f"{two_apis[0]}/api/v1/smart/events", headers=auth(alice)) as stream,
    ):
        await write(writer, bob, samples.workout(start=T0))
        await write(writer, alice, samples.workout(start=T0 + timedelta(hours=1)))
        got = await EventReader(stream).take(1)
    assert orjson.loads(got[0]["data"])["record"]["start"] == samples.iso(T0 + timedelta(hours=1))


@pytest.mark.parametrize(("last_event_id", "status"), [("garbage", 422), (encode(0) + "x", 422)])
async def test_a_malformed_last_event_id_is_refused(
    two_apis: list[str], last_event_id: str, status: int
) -> None:
    headers = auth(uuid.uuid4()) | {"Last-Event-ID": last_event_id}
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{two_apis[0]}/api/v1/smart/events", headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == "validation_error"


async def test_events_need_a_bearer(two_apis: list[str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{two_apis[0]}/api/v1/smart/events")
    assert answer.status_code == 401
