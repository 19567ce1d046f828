"""Every response the simulator serves validates against WHOOP's OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx

from services.simulator import api
from services.simulator.state import Simulator
from tests.services.simulator.conftest import bearer, connect
from tests.whoop_openapi import load_document, validate

COLLECTIONS = {
    "/developer/v2/cycle": "PaginatedCycleResponse",
    "/developer/v2/recovery": "RecoveryCollection",
    "/developer/v2/activity/sleep": "PaginatedSleepResponse",
    "/developer/v2/activity/workout": "WorkoutCollection",
}


async def _walk(
    http: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every page of a collection, each validated; all records."""
    records: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "25"}
    while True:
        response = await http.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        validate(response.json(), COLLECTIONS[path])
        records += response.json()["records"]
        if "next_token" not in response.json():
            return records
        params["nextToken"] = response.json()["next_token"]


async def test_every_served_response_validates(client: httpx.AsyncClient, sim: Simulator) -> None:
    headers = bearer(await connect(client))
    found = {path: await _walk(client, path, headers) for path in COLLECTIONS}
    assert all(found.values()), "every collection has records"
    singles = [
        *(f"/developer/v2/cycle/{c['id']}" for c in found["/developer/v2/cycle"]),
        *(f"/developer/v2/activity/sleep/{s['id']}" for s in found["/developer/v2/activity/sleep"]),
        *(
            f"/developer/v2/activity/workout/{w['id']}"
            for w in found["/developer/v2/activity/workout"]
        ),
    ]
    schema = {"cycle": "Cycle", "sleep": "Sleep", "workout": "WorkoutV2"}
    for path in singles:
        response = await client.get(path, headers=headers)
        assert response.status_code == 200
        validate(response.json(), schema[path.split("/")[-2]])
    for cycle in found["/developer/v2/cycle"]:
        sleep = await client.get(f"/developer/v2/cycle/{cycle['id']}/sleep", headers=headers)
        recovery = await client.get(f"/developer/v2/cycle/{cycle['id']}/recovery", headers=headers)
        validate(sleep.json(), "Sleep")
        validate(recovery.json(), "Recovery")
    profile = await client.get("/developer/v2/user/profile/basic", headers=headers)
    body = await client.get("/developer/v2/user/measurement/body", headers=headers)
    validate(profile.json(), "UserBasicProfile")
    validate(body.json(), "UserBodyMeasurement")


async def test_states_cover_pending_and_scored_with_score_only_when_scored(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    seen: set[str] = set()
    for user_id in sim.world.profiles:
        headers = bearer(await connect(client, user_id))
        for path in COLLECTIONS:
            for record in await _walk(client, path, headers):
                seen.add(record["score_state"])
                assert ("score" in record) == (record["score_state"] == "SCORED")
    assert {"SCORED", "PENDING_SCORE"} <= seen


def test_served_paths_are_whoops_paths() -> None:
    documented = load_document()["paths"]
    for route in api.routes():
        path = route.path.removeprefix("/developer")
        assert path in documented, path
        assert {m.lower() for m in route.methods or ()} - {"head"} <= set(documented[path])


async def test_activity_mapping_answers_a_v1_id_with_its_v2_uuid(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    headers = bearer(await connect(client))
    user = next(iter(sim.world.connected))
    workout = next(iter(sim.world.data(user).kinds["workout"].values())).body
    sim.world.data(user).put("workout", workout | {"v1_id": 1043})
    found = await client.get("/developer/v1/activity-mapping/1043", headers=headers)
    assert found.status_code == 200
    validate(found.json(), "ActivityIdMappingResponse")
    assert found.json() == {"v2_activity_id": workout["id"]}
    missing = await client.get("/developer/v1/activity-mapping/1044", headers=headers)
    assert missing.status_code == 404
    bad = await client.get("/developer/v1/activity-mapping/abc", headers=headers)
    assert bad.status_code == 400
    unauthorized = await client.get("/developer/v1/activity-mapping/1043")
    assert unauthorized.status_code == 401
