"""The app-wide budget: X-RateLimit-* headers on every data response, 429 beyond it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import httpx
import pytest

from services.simulator.config import SimConfig
from services.simulator.state import Simulator
from tests.services.simulator.conftest import bearer, connect


@pytest.fixture
def sim_config(sim_config: SimConfig) -> SimConfig:
    return dataclasses.replace(sim_config, rate_limit_per_minute=5, rate_limit_per_day=8)


@pytest.fixture(autouse=True)
def _window_start(sim: Simulator) -> None:
    """Start each test at the beginning of a minute window, so that no real boundary falls in it."""
    sim.clock.advance(60 - (sim.clock.now_ms() % 60_000) / 1000 + 0.001)


async def test_headers_count_down_then_429_until_the_window_resets(
    client: httpx.AsyncClient,
) -> None:
    a, b = bearer(await connect(client)), bearer(await connect(client))
    seen = []
    for i in range(6):
        response = await client.get("/developer/v2/cycle", headers=a if i % 2 else b)
        seen.append((response.status_code, response.headers["X-RateLimit-Remaining"]))
        reset = int(response.headers["X-RateLimit-Reset"])
        assert 1 <= reset <= 60
        assert response.headers["X-RateLimit-Limit"].startswith("5")
    assert seen == [(200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0"), (429, "0")]
    counters = (await client.get("/_sim/counters")).json()
    assert counters["rate_limited"] == 1
    assert counters["max_per_minute"] == 6
    await client.post("/_sim/clock", json={"seconds": 60})
    assert (await client.get("/developer/v2/cycle", headers=a)).status_code == 200


async def test_daily_budget_caps_across_minutes(client: httpx.AsyncClient) -> None:
    # Day windows are UTC days: start just after a midnight so that no day boundary falls inside.
    now = datetime.fromisoformat((await client.get("/_sim/clock")).json()["now"])
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=1, microsecond=0)
    await client.post("/_sim/clock", json={"seconds": (midnight - now).total_seconds()})
    headers = bearer(await connect(client))
    statuses = []
    for _ in range(3):
        statuses += [
            (await client.get("/developer/v2/recovery", headers=headers)).status_code
            for _ in range(4)
        ]
        await client.post("/_sim/clock", json={"seconds": 60})
    assert statuses.count(200) == 8
    assert statuses[-4:] == [429] * 4


async def test_oauth_and_control_calls_spend_no_budget(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await connect(client)
    for _ in range(4):
        await client.get("/_sim/users")
    headers = bearer(await connect(client))
    response = await client.get("/developer/v2/user/measurement/body", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "4"
