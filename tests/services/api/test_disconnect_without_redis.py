"""`DELETE /api/v1/whoop/connection` while Redis is away (a private redis-server, stopped): the
tokens are forgotten and the answer comes, on both backends."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from fastapi import FastAPI

from common.db.repositories import ConnectionRepository
from tests.conftest import BACKENDS
from tests.services.api.conftest import auth, connect_user, make_settings, running, state_of


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, and its URL; stopped at the end if still running."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield server, f"redis://127.0.0.1:{port}/0"
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)


async def _until_answers(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                await client.ping()
                return
            except aioredis.ConnectionError:
                await asyncio.sleep(0.05)
        raise AssertionError("the private redis-server never answered")
    finally:
        await client.aclose()


@pytest.fixture(params=BACKENDS)
async def api_with_private_redis(
    request: pytest.FixtureRequest,
    pg_url: str,
    sqlite_url: str,
    private_redis: tuple[subprocess.Popen[bytes], str],
) -> AsyncIterator[tuple[FastAPI, subprocess.Popen[bytes]]]:
    server, url = private_redis
    await _until_answers(url)
    database = pg_url if request.param == "postgresql" else sqlite_url
    async for app in running(make_settings(database, url)):
        yield app, server


@pytest.mark.parametrize("purge", [False, True])
async def test_disconnect_forgets_the_tokens_while_redis_is_down(
    api_with_private_redis: tuple[FastAPI, subprocess.Popen[bytes]], purge: bool
) -> None:
    app, server = api_with_private_redis
    user, _ = await connect_user(app)
    server.terminate()
    server.wait(10)

    transport = httpx.ASGITransport(app=app)
    with respx.mock(assert_all_called=False) as whoop:  # WHOOP answers; only Redis is away
        whoop.delete(url__regex=r".*/v2/user/access").respond(204)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            response = await client.delete(
                "/api/v1/whoop/connection", params={"purge": str(purge).lower()}, headers=auth(user)
            )

    assert response.status_code == 200
    body = response.json()
    receipt = body.pop("receipt", None)
    assert body == {"status": "revoked", "revoked_at_whoop": False, "purged": purge}
    async with state_of(app).session_factory() as session:
        row = await ConnectionRepository(session).get(user)
    if purge:  # erased (SPEC 3.5): the connection went with the rest, and the receipt says so
        assert row is None
        assert receipt is not None
        assert receipt["deleted"]["connections"] == 1
        return
    assert row is not None
    assert (row.access_token_enc, row.refresh_token_enc, row.status) == (None, None, "revoked")
