"""The app-wide budget: X-RateLimit-* headers on every data response, 429 beyond it."""

from __future__ import annotations

import dataclasses

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
    """Start each test with fresh windows: they are counted from the reset."""
    sim.reset()


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


async def _calls(client: httpx.AsyncClient, headers: dict[str, str], minutes: int) -> list[int]:
    """Four calls a simulated minute for `minutes` minutes; their statuses."""
    statuses = []
    for _ in range(minutes):
        statuses += [
            (await client.get("/developer/v2/recovery", headers=headers)).status_code
            for _ in range(4)
        ]
        await client.post("/_sim/clock", json={"seconds": 60})
    return statuses


async def test_daily_budget_caps_across_minutes(client: httpx.AsyncClient) -> None:
    headers = bearer(await connect(client))
    statuses = await _calls(client, headers, 3)
    assert statuses.count(200) == 8
    assert statuses[-4:] == [429] * 4
    assert (await client.get("/_sim/counters")).json()["day_used"] == 8


async def test_the_day_is_counted_from_the_reset(client: httpx.AsyncClient) -> None:
    headers = bearer(await connect(client))
    assert await _calls(client, headers, 2) == [200] * 8
    # 23 simulated hours after the reset, whatever the clock's time of day, the day is spent.
    await client.post("/_sim/clock", json={"seconds": 23 * 3600})
    assert (await client.get("/developer/v2/cycle", headers=headers)).status_code == 429
    await client.post("/_sim/clock", json={"seconds": 3600})
    headers = bearer(await connect(client))  # the first token has expired meanwhile
    assert (await client.get("/developer/v2/cycle", headers=headers)).status_code == 200
    await client.post("/_sim/reset")
    assert await _calls(client, headers, 2) == [200] * 8


async def test_the_call_log_names_each_call_its_member_and_answer(
    client: httpx.AsyncClient,
) -> None:
    headers = bearer(await connect(client, 10002))
    await _calls(client, headers, 3)
    calls = (await client.get("/_sim/calls")).json()["calls"]
    assert len(calls) == 12
    assert {tuple(c[1:]) for c in calls[:8]} == {("GET /v2/recovery", 10002, 200)}
    # A call refused by the budget is answered before its token is read: no member.
    assert {tuple(c[1:]) for c in calls[8:]} == {("GET /v2/recovery", None, 429)}
    assert calls == sorted(calls, key=lambda c: float(c[0]))


async def test_oauth_and_control_calls_spend_no_budget(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await connect(client)
    for _ in range(4):
        await client.get("/_sim/users")
    headers = bearer(await connect(client))
    response = await client.get("/developer/v2/user/measurement/body", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "4"


async def test_a_new_budget_applies_from_now(client: httpx.AsyncClient) -> None:
    headers = bearer(await connect(client))
    assert await _calls(client, headers, 1) == [200] * 4
    refused = await client.post("/_sim/rate-limit", json={"per_minute": 0, "per_day": 3})
    assert refused.status_code == 400
    changed = await client.post("/_sim/rate-limit", json={"per_minute": 2, "per_day": 3})
    assert changed.json() == {"per_minute": 2, "per_day": 3, "minute_used": 0, "day_used": 0}
    assert await _calls(client, headers, 2) == [200, 200, 429, 429, 200, 429, 429, 429]
    assert (await client.get("/_sim/rate-limit")).json()["day_used"] == 3
