"""Fixtures for the simulator: the app in-process through httpx's ASGITransport, and helpers to
connect a simulated member through the OAuth flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from services.simulator.app import create_app
from services.simulator.config import SimConfig
from services.simulator.state import Simulator

CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
REDIRECT = "http://app.test/api/v1/whoop/callback"
SCOPE = (
    "offline read:recovery read:cycles read:workout read:sleep read:profile read:body_measurement"
)


@pytest.fixture
def sim_config() -> SimConfig:
    """A small world with a generous budget (tests that need the limit override it)."""
    return SimConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        users=4,
        days=21,
        seed=7,
        rate_limit_per_minute=100_000,
        rate_limit_per_day=1_000_000,
        webhook_retry_delays=(0.01,) * 5,
    )


@pytest.fixture
async def sim_app(sim_config: SimConfig) -> AsyncIterator[Starlette]:
    """The simulator app, closed after the test."""
    app = create_app(sim_config)
    yield app
    await app.state.sim.aclose()


@pytest.fixture
def sim(sim_app: Starlette) -> Simulator:
    """The simulator's state."""
    state: Simulator = sim_app.state.sim
    return state


@pytest.fixture
async def client(sim_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=sim_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
        yield http


async def authorize(http: httpx.AsyncClient, **params: str) -> dict[str, list[str]]:
    """Follow the authorize endpoint once; the redirect's query parameters."""
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE,
        "state": "abcdefgh",
        **params,
    }
    response = await http.get("/oauth/oauth2/auth", params=query)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


async def token(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    """POST the token endpoint with the client's credentials in the form."""
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return await http.post("/oauth/oauth2/token", data=data)


async def connect(http: httpx.AsyncClient, user_id: int | None = None) -> dict[str, Any]:
    """Run the OAuth flow for a member; the token response."""
    hint = {"login_hint": str(user_id)} if user_id is not None else {}
    redirect = await authorize(http, **hint)
    response = await token(
        http, grant_type="authorization_code", code=redirect["code"][0], redirect_uri=REDIRECT
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    """The Authorization header for a token response."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}
