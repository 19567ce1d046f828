"""Collections page as WHOOP documents: limit (default 10, max 25), start inclusive, end exclusive
(default now), nextToken in and next_token out, newest first; 400 and 404 where WHOOP answers them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.simulator.clock import iso, parse_ms
from services.simulator.state import Simulator
from tests.services.simulator.conftest import bearer, connect

PATHS = ["/v2/cycle", "/v2/recovery", "/v2/activity/sleep", "/v2/activity/workout"]


def _time(path: str, record: dict[str, Any], sleeps: dict[str, dict[str, Any]]) -> int:
    """The time WHOOP sorts by: start, or the start of a recovery's sleep."""
    if path == "/v2/recovery":
        return parse_ms(sleeps[record["sleep_id"]]["start"])
    return parse_ms(record["start"])


async def _all(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str
) -> list[Any]:
    records: list[Any] = []
    query = dict(params)
    while True:
        page = (await http.get(f"/developer{path}", params=query, headers=headers)).json()
        records += page["records"]
        if "next_token" not in page:
            return records
        query["nextToken"] = page["next_token"]


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await connect(client))


@pytest.mark.parametrize("path", PATHS)
async def test_pages_walk_everything_newest_first_without_repeats(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    sleeps = {s["id"]: s for s in await _all(client, "/v2/activity/sleep", headers, limit="25")}
    records = await _all(client, path, headers, limit="7")
    times = [_time(path, r, sleeps) for r in records]
    assert times == sorted(times, reverse=True)
    keys = [r.get("id", r.get("cycle_id")) for r in records]
    assert len(keys) == len(set(keys))
    assert len(keys) > 7


async def test_limit_defaults_to_ten(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    page = (await client.get("/developer/v2/cycle", headers=headers)).json()
    assert len(page["records"]) == 10
    assert "next_token" in page


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "26"},
        {"limit": "0"},
        {"limit": "x"},
        {"start": "yesterday"},
        {"end": "2024-13-01T00:00:00Z"},
        {"nextToken": "garbage!"},
    ],
)
async def test_malformed_parameters_are_400(
    client: httpx.AsyncClient, headers: dict[str, str], query: dict[str, str]
) -> None:
    response = await client.get("/developer/v2/activity/sleep", params=query, headers=headers)
    assert response.status_code == 400


async def test_start_is_inclusive_and_end_exclusive(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    cycles = await _all(client, "/v2/cycle", headers, limit="25")
    newer, older = cycles[3], cycles[6]
    window = await _all(client, "/v2/cycle", headers, start=older["start"], end=newer["start"])
    assert [c["id"] for c in window] == [c["id"] for c in cycles[4:7]]


@pytest.mark.parametrize("path", PATHS)
async def test_start_takes_the_records_in_progress_at_it(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    """WHOOP: "occurred after or during (inclusive)" `start`: the cycle across midnight is in."""
    everything = await _all(client, path, headers, limit="25")
    sleeps = {s["id"]: s for s in await _all(client, "/v2/activity/sleep", headers, limit="25")}
    spanning = everything[5]
    began = _time(path, spanning, sleeps)
    over = parse_ms((sleeps[spanning["sleep_id"]] if path == "/v2/recovery" else spanning)["end"])
    window = await _all(client, path, headers, start=iso((began + over) // 2), limit="25")
    assert [r.get("id", r.get("cycle_id")) for r in window][-1] == spanning.get(
        "id", spanning.get("cycle_id")
    )
    assert len(window) >= 6


async def test_start_takes_the_current_cycle_which_has_no_end(
    client: httpx.AsyncClient, headers: dict[str, str], sim: Simulator
) -> None:
    page = await _all(client, "/v2/cycle", headers, start=iso(sim.clock.now_ms() - 1))
    assert len(page) == 1
    assert "end" not in page[0]


async def test_end_defaults_to_now(
    client: httpx.AsyncClient, headers: dict[str, str], sim: Simulator
) -> None:
    user = next(iter(sim.world.connected))
    future = sim.clock.now_ms() + 3_600_000
    sim.world.data(user).put(
        "workout", sim.world.data(user).kinds["workout"].popitem()[1].body | {"start": iso(future)}
    )
    workouts = await _all(client, "/v2/activity/workout", headers, limit="25")
    assert all(parse_ms(w["start"]) < future for w in workouts)
    later = await _all(client, "/v2/activity/workout", headers, end=iso(future + 1))
    assert parse_ms(later[0]["start"]) == future


async def test_current_cycle_has_no_end_and_ids_are_int64(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    cycles = await _all(client, "/v2/cycle", headers, limit="25")
    assert "end" not in cycles[0]
    assert all("end" in c for c in cycles[1:])
    assert all(c["id"] > 2**31 for c in cycles)


async def test_recovery_belongs_to_the_main_sleep_of_its_cycle(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    sleeps = await _all(client, "/v2/activity/sleep", headers, limit="25")
    assert any(s["nap"] for s in sleeps), "the seed gives naps"
    for recovery in await _all(client, "/v2/recovery", headers, limit="25"):
        cycle_sleep = await client.get(
            f"/developer/v2/cycle/{recovery['cycle_id']}/sleep", headers=headers
        )
        assert cycle_sleep.json()["id"] == recovery["sleep_id"]
        assert not cycle_sleep.json()["nap"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v2/cycle/1", 404),
        ("/v2/cycle/abc", 400),
        ("/v2/cycle/1/sleep", 404),
        ("/v2/cycle/1/recovery", 404),
        ("/v2/activity/sleep/7b5cbb51-7b1c-4b8e-9d8e-6d7f2b1e0a11", 404),
        ("/v2/activity/sleep/not-a-uuid", 400),
        ("/v2/activity/workout/7b5cbb51-7b1c-4b8e-9d8e-6d7f2b1e0a11", 404),
    ],
)
async def test_unknown_or_malformed_ids(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, status: int
) -> None:
    assert (await client.get(f"/developer{path}", headers=headers)).status_code == status


async def test_members_see_only_their_own_records(client: httpx.AsyncClient) -> None:
    alice, bob = bearer(await connect(client)), bearer(await connect(client))
    alice_id = (await client.get("/developer/v2/user/profile/basic", headers=alice)).json()[
        "user_id"
    ]
    bob_id = (await client.get("/developer/v2/user/profile/basic", headers=bob)).json()["user_id"]
    assert alice_id != bob_id
    for path in PATHS:
        assert {r["user_id"] for r in await _all(client, path, bob, limit="25")} == {bob_id}
    alice_cycle = (await client.get("/developer/v2/cycle", headers=alice)).json()["records"][0]
    assert (
        await client.get(f"/developer/v2/cycle/{alice_cycle['id']}", headers=bob)
    ).status_code == 404


def test_same_seed_same_world(sim: Simulator) -> None:
    from services.simulator.history import build_history

    user_id = next(iter(sim.world.profiles))
    profile, config = sim.world.profiles[user_id], sim.config
    first = build_history(
        profile, config.seed, config.days, 1_700_000_000_000, config.first_user_id
    )
    again = build_history(
        profile, config.seed, config.days, 1_700_000_000_000, config.first_user_id
    )
    other = build_history(
        profile, config.seed + 1, config.days, 1_700_000_000_000, config.first_user_id
    )
    bodies = {k: [r.body for r in first.kinds[k].values()] for k in first.kinds}
    assert bodies == {k: [r.body for r in again.kinds[k].values()] for k in again.kinds}
    assert bodies["sleep"] != [r.body for r in other.kinds["sleep"].values()]
