"""Scenario steps change the data and send exactly the matching webhooks (none for cycles)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest

from services.simulator.clock import parse_ms
from services.simulator.config import SimConfig
from services.simulator.state import Simulator
from tests.services.simulator.conftest import bearer, connect
from tests.services.simulator.test_webhooks import Receiver, receiver

__all__ = ["receiver"]


@pytest.fixture
def sim_config(sim_config: SimConfig, receiver: Receiver) -> SimConfig:
    return dataclasses.replace(sim_config, webhook_url=receiver.url)


async def _step(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/_sim/scenario/step", json=body)
    assert response.status_code == 200, response.text
    outcome: dict[str, Any] = response.json()["outcomes"][0]
    return outcome


async def _received(sim: Simulator, receiver: Receiver) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        await sim.webhooks.wait_idle()
    import json

    return [json.loads(body) for _, body in receiver.received]


@pytest.fixture
async def member(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    headers = bearer(await connect(client))
    profile = await client.get("/developer/v2/user/profile/basic", headers=headers)
    return profile.json()["user_id"], headers


async def test_new_sleep_closes_the_cycle_opens_one_and_announces_sleep_and_recovery(
    client: httpx.AsyncClient,
    sim: Simulator,
    receiver: Receiver,
    member: tuple[int, dict[str, str]],
) -> None:
    user_id, headers = member
    before = (await client.get("/developer/v2/cycle", headers=headers)).json()["records"][0]
    outcome = await _step(client, user_id=user_id, action="new_sleep")
    cycles = (await client.get("/developer/v2/cycle", headers=headers)).json()["records"]
    assert "end" not in cycles[0]
    assert cycles[1]["id"] == before["id"]
    assert cycles[1]["end"] == cycles[0]["start"]
    sleep = (
        await client.get(f"/developer/v2/cycle/{cycles[0]['id']}/sleep", headers=headers)
    ).json()
    recovery = (
        await client.get(f"/developer/v2/cycle/{cycles[0]['id']}/recovery", headers=headers)
    ).json()
    assert sleep["score_state"] == "PENDING_SCORE"
    assert recovery["sleep_id"] == sleep["id"]
    expected = [("sleep.updated", sleep["id"]), ("recovery.updated", sleep["id"])]
    assert [(e["type"], e["id"]) for e in outcome["events"]] == expected
    got = await _received(sim, receiver)
    assert [(w["type"], w["id"], w["user_id"]) for w in got] == [
        (t, i, user_id) for t, i in expected
    ]


async def test_rescore_turns_pending_into_scored_with_a_newer_updated_at(
    client: httpx.AsyncClient,
    sim: Simulator,
    receiver: Receiver,
    member: tuple[int, dict[str, str]],
) -> None:
    user_id, headers = member
    await _step(client, user_id=user_id, action="new_sleep")
    sleep_id = (await _received(sim, receiver))[0]["id"]
    before = (await client.get(f"/developer/v2/activity/sleep/{sleep_id}", headers=headers)).json()
    for _ in range(20):
        await _step(client, user_id=user_id, action="rescore")
        after = (
            await client.get(f"/developer/v2/activity/sleep/{sleep_id}", headers=headers)
        ).json()
        if after["score_state"] == "SCORED":
            break
    assert after["score_state"] == "SCORED"
    assert "score" in after
    assert parse_ms(after["updated_at"]) > parse_ms(before["updated_at"])
    types = {(w["type"], w["id"]) for w in await _received(sim, receiver)}
    assert ("sleep.updated", sleep_id) in types
    assert not any(t.startswith("cycle.") for t, _ in types)


async def test_workout_and_delete_steps(
    client: httpx.AsyncClient,
    sim: Simulator,
    receiver: Receiver,
    member: tuple[int, dict[str, str]],
) -> None:
    user_id, headers = member
    created = await _step(client, user_id=user_id, action="workout")
    workout_id = created["events"][0]["id"]
    assert (
        await client.get(f"/developer/v2/activity/workout/{workout_id}", headers=headers)
    ).status_code == 200
    deleted = await _step(client, user_id=user_id, action="delete")
    kind, gone = deleted["events"][0]["type"], deleted["events"][0]["id"]
    path = "workout" if kind == "workout.deleted" else "sleep"
    assert (
        await client.get(f"/developer/v2/activity/{path}/{gone}", headers=headers)
    ).status_code == 404
    types = [w["type"] for w in await _received(sim, receiver)]
    assert types == ["workout.updated", kind]


async def test_a_step_for_everyone_only_notifies_connected_members(
    client: httpx.AsyncClient,
    sim: Simulator,
    receiver: Receiver,
    member: tuple[int, dict[str, str]],
) -> None:
    user_id, _ = member
    response = (await client.post("/_sim/scenario/step", json={})).json()
    assert len(response["outcomes"]) == len(sim.world.profiles)
    mine = next(o for o in response["outcomes"] if o["user_id"] == user_id)
    got = await _received(sim, receiver)
    assert {w["user_id"] for w in got} <= {user_id}
    assert len(got) == len(mine["events"])


async def test_scenario_interval_runs_steps_on_its_own(sim_config: SimConfig) -> None:
    from services.simulator.server import serve_in_background

    config = dataclasses.replace(sim_config, scenario_interval=0.05)
    async with serve_in_background(config) as running:
        for _ in range(250):
            if running.sim.world.steps >= 2:
                break
            await asyncio.sleep(0.02)
        assert running.sim.world.steps >= 2


async def test_bad_step_requests(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_sim/scenario/step", json={"action": "explode"})).status_code == 400
    assert (await client.post("/_sim/scenario/step", json={"user_id": 1})).status_code == 404
    assert (await client.post("/_sim/scenario/step", content=b"[1]")).status_code == 400
