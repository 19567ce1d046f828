"""ConnectionTokens: one refresh per connection across coroutines and processes, the rotated
refresh token committed before use, a refused refresh marking the connection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from common.crypto import TokenCipher
from common.db.engine import create_session_factory
from common.locks import Locks
from common.ratelimit import LocalRateLimiter
from common.sync.tokens import ConnectionTokens, refresh_expiring
from common.types import ConnectionStatus
from common.whoop.client import WhoopClient
from common.whoop.errors import WhoopReauthorizationRequired
from common.whoop.oauth import OAuthClient
from tests.common.sync.connections import KEY, Factory, connect, stored
from tests.common.sync.token_server import PROFILE, Rotation, serve
from tests.common.whoop.fakes import BASE, OAUTH, checked

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def factory(pg_engine: AsyncEngine) -> Factory:
    """PostgreSQL only: the refresh is also raced across processes."""
    return create_session_factory(pg_engine)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class FakeWhoop:
    """respx handlers: a rotating token endpoint and a profile endpoint that, the first time it
    sees a new access token, checks the rotated refresh token was already committed."""

    def __init__(self, factory: Factory, cipher: TokenCipher, user_id: uuid.UUID) -> None:
        self.rotation = Rotation()
        self.factory, self.cipher, self.user_id = factory, cipher, user_id
        self.used_before_stored = 0
        self.checked: set[str] = set()

    def token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        status, body = self.rotation.token(form)
        return httpx.Response(status, json=body)

    async def profile(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)  # let the others pile up
        header = request.headers.get("Authorization")
        if not self.rotation.authorized(header):
            return httpx.Response(401)
        if header not in self.checked:
            self.checked.add(header)
            _, refresh, _ = await stored(self.factory, self.cipher, self.user_id)
            self.used_before_stored += refresh != self.rotation.refresh_token
        return httpx.Response(200, json=checked(dict(PROFILE), "UserBasicProfile"))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


async def fifty_calls(
    factory: Factory, cipher: TokenCipher, locks: Locks, http: httpx.AsyncClient, user_id: uuid.UUID
) -> list[Any]:
    """50 concurrent profile reads, each through its own ConnectionTokens (as per request/job)."""
    oauth = OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")
    whoop = WhoopClient(http, BASE, LocalRateLimiter(1000, 100_000))

    async def call() -> Any:
        tokens = ConnectionTokens(factory, user_id, cipher, oauth, locks)
        return await whoop.for_user(tokens).profile()

    return await asyncio.gather(*(call() for _ in range(50)), return_exceptions=True)


@pytest.mark.parametrize(
    "expires_in",
    [pytest.param(timedelta(seconds=-1), id="expired"), pytest.param(timedelta(hours=1), id="401")],
)
async def test_fifty_concurrent_calls_refresh_exactly_once(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    mock: respx.MockRouter,
    expires_in: timedelta,
) -> None:
    user_id = await connect(factory, cipher, expires_in)
    fake = FakeWhoop(factory, cipher, user_id)
    mock.post(f"{OAUTH}/token").mock(side_effect=fake.token)
    mock.get(f"{BASE}/v2/user/profile/basic").mock(side_effect=fake.profile)
    if expires_in > timedelta(0):
        fake.rotation.access_token = "revoked-a0"  # WHOOP rejects the token we believe valid

    results = await fifty_calls(factory, cipher, locks, http, user_id)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert fake.rotation.refreshes == 1
    assert fake.rotation.spent_reuse == 0
    assert fake.used_before_stored == 0
    assert await stored(factory, cipher, user_id) == ("a1", "r1", "active")


async def test_refused_refresh_requires_reauthorization(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    mock: respx.MockRouter,
) -> None:
    user_id = await connect(factory, cipher, timedelta(seconds=-1))
    route = mock.post(f"{OAUTH}/token").respond(400, json={"error": "invalid_grant"})
    oauth = OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")
    tokens = ConnectionTokens(factory, user_id, cipher, oauth, locks)
    with pytest.raises(WhoopReauthorizationRequired):
        await tokens.access_token()
    assert (await stored(factory, cipher, user_id))[2] == ConnectionStatus.REAUTHORIZATION_REQUIRED
    with pytest.raises(WhoopReauthorizationRequired):  # and WHOOP is not asked again
        await ConnectionTokens(factory, user_id, cipher, oauth, locks).access_token()
    assert route.call_count == 1


async def test_valid_token_is_used_without_refreshing(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    mock: respx.MockRouter,
) -> None:
    user_id = await connect(factory, cipher, timedelta(hours=1))
    route = mock.post(f"{OAUTH}/token").respond(500)
    oauth = OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")
    assert await ConnectionTokens(factory, user_id, cipher, oauth, locks).access_token() == "a0"
    assert route.call_count == 0


async def test_token_expiring_within_five_minutes_is_refreshed_first(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    mock: respx.MockRouter,
) -> None:
    user_id = await connect(factory, cipher, timedelta(minutes=4))
    fake = FakeWhoop(factory, cipher, user_id)
    mock.post(f"{OAUTH}/token").mock(side_effect=fake.token)
    oauth = OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")
    assert await ConnectionTokens(factory, user_id, cipher, oauth, locks).access_token() == "a1"


async def test_refresh_expiring_refreshes_only_what_expires(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    mock: respx.MockRouter,
) -> None:
    soon = await connect(factory, cipher, timedelta(minutes=2))
    later = await connect(factory, cipher, timedelta(hours=5))
    fake = FakeWhoop(factory, cipher, soon)
    mock.post(f"{OAUTH}/token").mock(side_effect=fake.token)
    oauth = OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")
    refreshed = await refresh_expiring(factory, cipher, oauth, locks, timedelta(minutes=10))
    assert refreshed >= 1  # other tests' connections may expire too; ours must be among them
    assert (await stored(factory, cipher, soon))[:2] == ("a1", "r1")
    assert (await stored(factory, cipher, later))[:2] == ("a0", "r0")


async def test_two_processes_refresh_exactly_once(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    http: httpx.AsyncClient,
    pg_url: str,
    redis_url: str,
) -> None:
    user_id = await connect(factory, cipher, timedelta(seconds=-1))
    rotation = Rotation()
    server = serve(rotation)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.common.sync.token_race",
        pg_url, redis_url, str(user_id), KEY, url, "25",
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert other.stdin is not None
        assert other.stdout is not None
        assert (await asyncio.wait_for(other.stdout.readline(), 20)).strip() == b"ready"
        oauth = OAuthClient(http, f"{url}/oauth", "client", "secret", "https://app/cb")
        whoop = WhoopClient(http, f"{url}/developer", LocalRateLimiter(1000, 100_000))

        async def call() -> int:
            tokens = ConnectionTokens(factory, user_id, cipher, oauth, locks)
            return (await whoop.for_user(tokens).profile()).user_id

        other.stdin.write(b"go\n")
        await other.stdin.drain()
        mine = await asyncio.gather(*(call() for _ in range(25)))
        theirs = int(await asyncio.wait_for(other.stdout.readline(), 20))
        assert await asyncio.wait_for(other.wait(), 10) == 0
    finally:
        if other.returncode is None:
            other.kill()
        await asyncio.to_thread(server.shutdown)
        server.server_close()
    assert mine == [10129] * 25
    assert theirs == 25
    assert rotation.refreshes == 1
    assert rotation.spent_reuse == 0
    assert await stored(factory, cipher, user_id) == ("a1", "r1", "active")
