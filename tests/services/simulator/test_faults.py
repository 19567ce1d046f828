"""Fault injection through the control API, and the call counters."""

from __future__ import annotations

import time

import httpx
import pytest

from services.simulator.server import RunningSim
from tests.services.simulator.conftest import bearer, connect

CYCLES = "/developer/v2/cycle"


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await connect(client))


async def test_next_n_calls_fail_with_the_injected_status(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    rule = await client.post(
        "/_sim/faults", json={"status": 503, "count": 2, "path": "/developer/v2/cycle*"}
    )
    assert rule.status_code == 201
    statuses = [(await client.get(CYCLES, headers=headers)).status_code for _ in range(3)]
    other = await client.get("/developer/v2/recovery", headers=headers)
    assert statuses == [503, 503, 200]
    assert other.status_code == 200
    assert (await client.get("/_sim/faults")).json() == {"faults": []}


async def test_fraction_applies_to_a_share_of_calls(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_sim/faults", json={"status": 500, "fraction": 0.5})
    statuses = [(await client.get(CYCLES, headers=headers)).status_code for _ in range(200)]
    assert 60 < statuses.count(500) < 140
    assert (await client.delete("/_sim/faults")).status_code == 204
    assert (await client.get(CYCLES, headers=headers)).status_code == 200


async def test_injected_429_carries_rate_limit_headers(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_sim/faults", json={"status": 429, "count": 1})
    response = await client.get(CYCLES, headers=headers)
    assert response.status_code == 429
    assert "X-RateLimit-Reset" in response.headers


async def test_latency_delays_the_answer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_sim/faults", json={"latency_ms": 200, "count": 1, "method": "GET"})
    began = time.monotonic()
    assert (await client.get(CYCLES, headers=headers)).status_code == 200
    assert time.monotonic() - began >= 0.2


async def test_bad_rules_are_400(client: httpx.AsyncClient) -> None:
    for rule in ({"status": 99}, {"fraction": 2, "status": 500}, {"bogus": 1}, {"path": "*"}):
        assert (await client.post("/_sim/faults", json=rule)).status_code == 400


async def test_timeout_hangs_past_the_client_deadline(whoop_sim: RunningSim) -> None:
    async with httpx.AsyncClient(base_url=whoop_sim.base_url) as http:
        headers = bearer(await connect(http))
        await http.post("/_sim/faults", json={"timeout": True, "hang_seconds": 0.8, "count": 1})
        with pytest.raises(httpx.ReadTimeout):
            await http.get(CYCLES, headers=headers, timeout=0.3)
        assert (await http.get(CYCLES, headers=headers)).status_code == 200


async def test_counters_by_endpoint_user_status_and_reset(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    profile = (await client.get("/developer/v2/user/profile/basic", headers=headers)).json()
    cycle = (await client.get(CYCLES, headers=headers)).json()["records"][0]
    await client.get(f"{CYCLES}/{cycle['id']}", headers=headers)
    await client.get(f"{CYCLES}/1", headers=headers)
    counters = (await client.get("/_sim/counters")).json()
    assert counters["by_endpoint"]["GET /v2/cycle/{cycleId}"] == 2
    assert counters["by_endpoint"]["POST /oauth/oauth2/token"] == 1
    assert counters["by_user"][str(profile["user_id"])] == 4
    assert counters["by_status"]["404"] == 1
    assert counters["rate_limited"] == 0
    assert (await client.delete("/_sim/counters")).status_code == 204
    assert (await client.get("/_sim/counters")).json()["total"] == 0
