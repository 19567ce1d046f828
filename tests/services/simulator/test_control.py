"""The control API: members, clock, and creating, modifying and deleting records."""

from __future__ import annotations

import httpx

from services.simulator.clock import parse_ms
from services.simulator.state import Simulator
from tests.services.simulator.conftest import bearer, connect
from tests.whoop_openapi import validate


async def test_users_lists_every_member_with_email_and_connection(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    await connect(client)
    users = (await client.get("/_sim/users")).json()["users"]
    assert [u["user_id"] for u in users] == list(sim.world.profiles)
    assert all("@" in u["email"] for u in users)
    assert [u["connected"] for u in users] == [True, False, False, False]


async def test_clock_advances(client: httpx.AsyncClient) -> None:
    before = parse_ms((await client.get("/_sim/clock")).json()["now"])
    after = parse_ms((await client.post("/_sim/clock", json={"seconds": 7200})).json()["now"])
    assert after - before >= 7_200_000
    assert (await client.post("/_sim/clock", json={"seconds": -1})).status_code == 400


async def test_create_modify_delete_a_workout(client: httpx.AsyncClient, sim: Simulator) -> None:
    headers = bearer(await connect(client))
    user_id = next(iter(sim.world.connected))
    base = f"/_sim/users/{user_id}/workout"
    created = await client.post(base, json={"sport_name": "rowing", "score_state": "PENDING_SCORE"})
    assert created.status_code == 201
    record = created.json()["record"]
    validate(record, "WorkoutV2")
    assert created.json()["webhook"]["type"] == "workout.updated"
    public = await client.get(f"/developer/v2/activity/workout/{record['id']}", headers=headers)
    assert public.json() == record
    patched = (await client.patch(f"{base}/{record['id']}", json={"score_state": "SCORED"})).json()
    validate(patched["record"], "WorkoutV2")
    assert "score" in patched["record"]
    assert parse_ms(patched["record"]["updated_at"]) > parse_ms(record["updated_at"])
    gone = await client.delete(f"{base}/{record['id']}?webhook=false")
    assert gone.json()["webhook"] is None
    assert (await client.get(f"{base}/{record['id']}")).status_code == 404


async def test_create_sleep_and_recovery_then_delete_the_sleep(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    user_id = next(iter(sim.world.profiles))
    sleep = (await client.post(f"/_sim/users/{user_id}/sleep", json={"nap": True})).json()["record"]
    validate(sleep, "Sleep")
    assert sleep["nap"] is True
    response = await client.post(f"/_sim/users/{user_id}/recovery", json={"sleep_id": sleep["id"]})
    recovery = response.json()["record"]
    validate(recovery, "Recovery")
    assert recovery["cycle_id"] == sleep["cycle_id"]
    assert response.json()["webhook"] is None, "the member is not connected"
    await client.delete(f"/_sim/users/{user_id}/sleep/{sleep['id']}")
    assert (
        await client.get(f"/_sim/users/{user_id}/recovery/{sleep['cycle_id']}")
    ).status_code == 404


async def test_record_endpoints_refuse_unknown_targets(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    user_id = next(iter(sim.world.profiles))
    assert (await client.post("/_sim/users/1/workout", json={})).status_code == 404
    assert (await client.post(f"/_sim/users/{user_id}/steps", json={})).status_code == 404
    no_sleep = {"sleep_id": "7b5cbb51-7b1c-4b8e-9d8e-6d7f2b1e0a11"}
    assert (await client.post(f"/_sim/users/{user_id}/recovery", json=no_sleep)).status_code == 400
    assert (await client.post(f"/_sim/users/{user_id}/cycle", content=b"nope")).status_code == 400


async def test_a_created_cycle_is_the_only_open_one(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    user_id = next(iter(sim.world.profiles))
    created = (await client.post(f"/_sim/users/{user_id}/cycle", json={})).json()["record"]
    validate(created, "Cycle")
    open_cycles = [
        r.body for r in sim.world.data(user_id).kinds["cycle"].values() if "end" not in r.body
    ]
    assert open_cycles == [created]
    recovery = (await client.post(f"/_sim/users/{user_id}/recovery", json={})).json()["record"]
    validate(recovery, "Recovery")


async def test_records_created_in_the_same_instant_get_distinct_ids(
    client: httpx.AsyncClient,
) -> None:
    made = [
        (await client.post("/_sim/users/10001/workout", json={"sport_name": "running"})).json()
        for _ in range(5)
    ]
    assert len({m["record"]["id"] for m in made}) == 5


async def test_rescoring_a_recovery_without_a_score_generates_one(
    client: httpx.AsyncClient,
) -> None:
    created = (
        await client.post("/_sim/users/10001/recovery", json={"score_state": "PENDING_SCORE"})
    ).json()
    key = created["record"]["cycle_id"]
    patched = await client.patch(
        f"/_sim/users/10001/recovery/{key}", json={"score_state": "SCORED"}
    )
    assert patched.status_code == 200, patched.text
    assert "recovery_score" in patched.json()["record"]["score"]


async def test_health_readiness_and_metrics_like_every_process(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    await client.get("/developer/v2/cycle")  # unauthenticated: counted all the same
    text = (await client.get("/metrics")).text
    assert 'whoopsync_sim_calls_total{endpoint="GET /v2/cycle"} 1.0' in text
    assert "whoopsync_sim_rate_limited_total 0.0" in text
