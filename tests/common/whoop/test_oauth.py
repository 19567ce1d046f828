"""OAuth: the authorize URL and the token endpoint, mocked with respx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from common.whoop.errors import (
    WhoopAuthError,
    WhoopReauthorizationRequired,
    WhoopServerError,
    WhoopTransportError,
)
from common.whoop.oauth import SCOPES, OAuthClient, new_state
from tests.common.whoop.fakes import OAUTH


@pytest.fixture
async def oauth() -> AsyncIterator[OAuthClient]:
    async with httpx.AsyncClient() as http:
        yield OAuthClient(http, OAUTH, "client-1", "secret-1", "https://app.example/callback")


def _token_answer(access: str = "acc", refresh: str = "ref") -> dict[str, object]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 3600,
        "scope": " ".join(SCOPES),
        "token_type": "bearer",
    }


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_authorization_url_asks_for_every_read_scope_and_offline(oauth: OAuthClient) -> None:
    url = urlsplit(oauth.authorization_url("abcd1234"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{OAUTH}/auth"
    assert query["client_id"] == "client-1"
    assert query["redirect_uri"] == "https://app.example/callback"
    assert query["response_type"] == "code"
    assert query["state"] == "abcd1234"
    assert set(query["scope"].split(" ")) == {
        "read:recovery",
        "read:cycles",
        "read:workout",
        "read:sleep",
        "read:profile",
        "read:body_measurement",
        "offline",
    }


def test_new_state_is_eight_unguessable_characters() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(s) == 8 for s in states)


@respx.mock
async def test_exchange_code_posts_the_form_and_returns_tokens(oauth: OAuthClient) -> None:
    route = respx.post(f"{OAUTH}/token").respond(200, json=_token_answer())
    tokens = await oauth.exchange_code("the-code")
    form = _form(route.calls[0].request)
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://app.example/callback",
        "client_id": "client-1",
        "client_secret": "secret-1",
    }
    assert (tokens.access_token, tokens.refresh_token) == ("acc", "ref")
    expected = datetime.now(UTC) + timedelta(hours=1)
    assert abs((tokens.expires_at - expected).total_seconds()) < 5
    assert "acc" not in repr(tokens)


@respx.mock
async def test_refresh_sends_the_refresh_token_with_offline_scope(oauth: OAuthClient) -> None:
    route = respx.post(f"{OAUTH}/token").respond(200, json=_token_answer("acc2", "ref2"))
    tokens = await oauth.refresh("ref1")
    form = _form(route.calls[0].request)
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "ref1"
    assert form["scope"] == "offline"
    assert tokens.refresh_token == "ref2"


@pytest.mark.parametrize("status", [400, 401])
@respx.mock
async def test_invalid_grant_requires_reauthorization(oauth: OAuthClient, status: int) -> None:
    respx.post(f"{OAUTH}/token").respond(status, json={"error": "invalid_grant"})
    with pytest.raises(WhoopReauthorizationRequired):
        await oauth.refresh("spent")


@respx.mock
async def test_rejected_client_is_an_auth_error_not_a_reauthorization(oauth: OAuthClient) -> None:
    respx.post(f"{OAUTH}/token").respond(401, json={"error": "invalid_client"})
    with pytest.raises(WhoopAuthError) as caught:
        await oauth.refresh("ref")
    assert not isinstance(caught.value, WhoopReauthorizationRequired)


@respx.mock
async def test_token_endpoint_failures_map_to_errors(oauth: OAuthClient) -> None:
    respx.post(f"{OAUTH}/token").respond(502)
    with pytest.raises(WhoopServerError):
        await oauth.refresh("ref")
    respx.post(f"{OAUTH}/token").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(WhoopTransportError, match="timeout"):
        await oauth.refresh("ref")
