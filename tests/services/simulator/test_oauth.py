"""The simulated OAuth server: instant approval, code exchange, rotating refresh tokens, expiry,
revocation, denial."""

from __future__ import annotations

import httpx

from services.simulator.state import Simulator
from tests.services.simulator.conftest import REDIRECT, SCOPE, authorize, bearer, connect, token

PROFILE = "/developer/v2/user/profile/basic"


async def test_authorize_redirects_with_code_and_state_for_login_hint(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    user_id = list(sim.world.profiles)[2]
    redirect = await authorize(client, login_hint=str(user_id))
    assert redirect["state"] == ["abcdefgh"]
    assert redirect["code"]
    response = await token(
        client, grant_type="authorization_code", code=redirect["code"][0], redirect_uri=REDIRECT
    )
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "bearer"
    assert body["scope"] == SCOPE
    profile = await client.get(PROFILE, headers=bearer(body))
    assert profile.json()["user_id"] == user_id
    assert user_id in sim.world.connected


async def test_without_hint_each_authorize_picks_the_next_unconnected_member(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    seen = []
    for _ in sim.world.profiles:
        tokens = await connect(client)
        seen.append((await client.get(PROFILE, headers=bearer(tokens))).json()["user_id"])
    assert seen == list(sim.world.profiles)
    assert (await authorize(client))["error"] == ["access_denied"]


async def test_code_is_single_use(client: httpx.AsyncClient) -> None:
    code = (await authorize(client))["code"][0]
    first = await token(client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    again = await token(client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_refresh_rotates_and_a_spent_refresh_token_is_invalid_grant(
    client: httpx.AsyncClient,
) -> None:
    first = await connect(client)
    second = (
        await token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    spent = await token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert spent.status_code == 400
    assert spent.json()["error"] == "invalid_grant"
    third = await token(client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert third.status_code == 200
    assert (await client.get(PROFILE, headers=bearer(third.json()))).status_code == 200


async def test_access_token_expires_after_its_ttl(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    tokens = await connect(client)
    assert tokens["expires_in"] == 3600
    assert (await client.get(PROFILE, headers=bearer(tokens))).status_code == 200
    await client.post("/_sim/clock", json={"seconds": 3601})
    assert (await client.get(PROFILE, headers=bearer(tokens))).status_code == 401


async def test_unknown_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(PROFILE, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await client.get(PROFILE)).status_code == 401


async def test_forced_expiry_and_refresh_revocation(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    tokens = await connect(client)
    user_id = (await client.get(PROFILE, headers=bearer(tokens))).json()["user_id"]
    assert (await client.post(f"/_sim/users/{user_id}/expire-access-token")).json() == {
        "expired": 1
    }
    assert (await client.get(PROFILE, headers=bearer(tokens))).status_code == 401
    assert (await client.post(f"/_sim/users/{user_id}/revoke-refresh-token")).json() == {
        "revoked": 1
    }
    refused = await token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.json()["error"] == "invalid_grant"


async def test_delete_user_access_revokes_tokens_and_connection(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    tokens = await connect(client)
    assert (
        await client.delete("/developer/v2/user/access", headers=bearer(tokens))
    ).status_code == 204
    assert not sim.world.connected
    assert (await client.get(PROFILE, headers=bearer(tokens))).status_code == 401
    refused = await token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400


async def test_denial_by_hint_or_control(client: httpx.AsyncClient) -> None:
    assert (await authorize(client, login_hint="deny"))["error"] == ["access_denied"]
    await client.post("/_sim/oauth/deny", json={"count": 1})
    denied = await authorize(client)
    assert denied["error"] == ["access_denied"]
    assert denied["state"] == ["abcdefgh"]
    assert "code" in await authorize(client)


async def test_wrong_client_credentials_are_invalid_client(client: httpx.AsyncClient) -> None:
    code = (await authorize(client))["code"][0]
    response = await token(
        client, grant_type="authorization_code", code=code, client_secret="wrong"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    bad_id = await client.get(
        "/oauth/oauth2/auth", params={"client_id": "x", "redirect_uri": REDIRECT}
    )
    assert bad_id.status_code == 400


async def test_missing_scope_is_refused(client: httpx.AsyncClient) -> None:
    redirect = await authorize(client, scope="offline read:profile")
    tokens = (await token(client, grant_type="authorization_code", code=redirect["code"][0])).json()
    assert (await client.get(PROFILE, headers=bearer(tokens))).status_code == 200
    assert (await client.get("/developer/v2/cycle", headers=bearer(tokens))).status_code == 401
