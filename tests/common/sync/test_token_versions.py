"""ConnectionTokens on both backends: the refresh lock's lease outlives a slow refresh, and every
status write is conditional on the token version, so nothing a stale refresh sees or stores can
overwrite newer tokens or undo a disconnect."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from common.crypto import TokenCipher
from common.db.repositories.connections import ConnectionRepository
from common.db.types import utcnow
from common.locks import Locks
from common.sync import tokens as tokens_module
from common.sync.tokens import ConnectionTokens
from common.whoop.errors import WhoopReauthorizationRequired
from common.whoop.oauth import OAuthClient
from tests.common.sync.connections import Factory, connect, stored
from tests.common.sync.token_server import Rotation
from tests.common.whoop.fakes import OAUTH


@pytest.fixture
async def oauth() -> object:
    async with httpx.AsyncClient() as http:
        yield OAuthClient(http, OAUTH, "client", "secret", "https://app/cb")


def tokens_of(
    factory: Factory, user_id: uuid.UUID, cipher: TokenCipher, oauth: OAuthClient, locks: Locks
) -> ConnectionTokens:
    return ConnectionTokens(factory, user_id, cipher, oauth, locks)


def granted(access: str, refresh: str) -> httpx.Response:
    body = {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 3600,
        "scope": "offline read:profile",
        "token_type": "bearer",
    }
    return httpx.Response(200, json=body)


async def test_lease_outlasts_a_slow_refresh(
    factory: Factory,
    cipher: TokenCipher,
    locks: Locks,
    oauth: OAuthClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens_module, "LOCK_TIMEOUT", 0.15)
    user_id = await connect(factory, cipher, timedelta(seconds=-1))
    rotation = Rotation()

    async def token(request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        status, body = rotation.token(form)
        if rotation.refreshes == 1 and status == 200:
            await asyncio.sleep(0.6)  # WHOOP answers slowly: four leases long
        return httpx.Response(status, json=body)

    with respx.mock(assert_all_called=False) as mock:
        mock.post(f"{OAUTH}/token").mock(side_effect=token)
        first = asyncio.create_task(
            tokens_of(factory, user_id, cipher, oauth, locks).access_token()
        )
        await asyncio.sleep(0.05)  # the first holds the lock
        second = await tokens_of(factory, user_id, cipher, oauth, locks).access_token()

    assert (await first, second) == ("a1", "a1")
    assert rotation.spent_reuse == 0  # the second waited instead of spending the rotated token
    assert await stored(factory, cipher, user_id) == ("a1", "r1", "active")


async def test_refusal_after_the_tokens_were_replaced_keeps_them(
    factory: Factory, cipher: TokenCipher, locks: Locks, oauth: OAuthClient
) -> None:
    user_id = await connect(factory, cipher, timedelta(seconds=-1))

    async def token(request: httpx.Request) -> httpx.Response:
        # While our request is under way, another holder stores good tokens, and WHOOP refuses
        # our (by now spent) refresh token.
        async with factory() as session:
            repository = ConnectionRepository(session)
            row = await repository.get(user_id)
            assert row is not None
            await repository.store_tokens(
                user_id,
                expected_version=row.token_version,
                access_token_enc=cipher.encrypt("good-a"),
                refresh_token_enc=cipher.encrypt("good-r"),
                expires_at=utcnow() + timedelta(hours=1),
            )
            await session.commit()
        return httpx.Response(400, json={"error": "invalid_grant"})

    with respx.mock(assert_all_called=False) as mock:
        mock.post(f"{OAUTH}/token").mock(side_effect=token)
        access = await tokens_of(factory, user_id, cipher, oauth, locks).access_token()

    assert access == "good-a"
    assert await stored(factory, cipher, user_id) == ("good-a", "good-r", "active")


async def test_disconnect_during_a_refresh_stays_disconnected(
    factory: Factory, cipher: TokenCipher, locks: Locks, oauth: OAuthClient
) -> None:
    user_id = await connect(factory, cipher, timedelta(seconds=-1))

    async def token(request: httpx.Request) -> httpx.Response:
        async with factory() as session:  # the user disconnects while WHOOP answers
            await ConnectionRepository(session).forget_tokens(user_id)
            await session.commit()
        return granted("a1", "r1")

    with respx.mock(assert_all_called=False) as mock:
        mock.post(f"{OAUTH}/token").mock(side_effect=token)
        with pytest.raises(WhoopReauthorizationRequired):
            await tokens_of(factory, user_id, cipher, oauth, locks).access_token()

    assert await stored(factory, cipher, user_id) == ("", "", "revoked")


async def test_a_row_inserted_again_never_takes_a_version_a_refresh_began_from(
    factory: Factory, cipher: TokenCipher
) -> None:
    user_id = await connect(factory, cipher, timedelta(hours=1))
    async with factory() as session:
        row = await ConnectionRepository(session).get(user_id)
        assert row is not None
        began_from, whoop_user = row.token_version, row.whoop_user_id
    # The account moves to another user and back (each link deletes the other user's row and
    # inserts its own), as a refresh that read `began_from` is still at WHOOP.
    other = uuid.uuid4()
    for holder in (other, user_id):
        async with factory() as session:
            await ConnectionRepository(session).save(
                user_id=holder,
                whoop_user_id=whoop_user,
                access_token_enc=cipher.encrypt("a-new"),
                refresh_token_enc=cipher.encrypt("r-new"),
                expires_at=utcnow() + timedelta(hours=1),
                scopes="offline",
            )
            await session.commit()

    async with factory() as session:
        row = await ConnectionRepository(session).get(user_id)
        assert row is not None
        assert row.token_version > began_from
        stored_late = await ConnectionRepository(session).store_tokens(
            user_id,
            expected_version=began_from,
            access_token_enc=cipher.encrypt("a-late"),
            refresh_token_enc=cipher.encrypt("r-late"),
            expires_at=utcnow() + timedelta(hours=1),
        )
        await session.commit()
    assert not stored_late
    assert await stored(factory, cipher, user_id) == ("a-new", "r-new", "active")
