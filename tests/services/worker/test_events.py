"""Each WHOOP event end to end over real HTTP: simulator → signed webhook → job → rows."""

from __future__ import annotations

import uuid

from common.types import DataType, EventStatus
from tests.common.sync.harness import SLEEP_BY_ID, Pipeline

RECOVERY_BY_CYCLE = "GET /v2/cycle/{cycleId}/recovery"
CYCLE_BY_ID = "GET /v2/cycle/{cycleId}"
CYCLES = "GET /v2/cycle"


def _ids(rows: list[dict[str, object]], key: str = "id") -> list[object]:
    return [row[key] for row in rows]


async def test_sleep_updated_writes_the_sleep_and_its_cycle(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    assert _ids(await pipe.rows(DataType.SLEEP, 10001)) == [sleep["id"]]
    assert _ids(await pipe.rows(DataType.CYCLE, 10001)) == [sleep["cycle_id"]]
    assert pipe.calls(SLEEP_BY_ID) == 1
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value


async def test_recovery_updated_follows_the_sleep_uuid_to_its_cycle(pipe: Pipeline) -> None:
    recovery = pipe.record(10001, "recovery")
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    (stored,) = await pipe.rows(DataType.RECOVERY, 10001)
    assert stored == recovery
    assert _ids(await pipe.rows(DataType.SLEEP, 10001)) == [recovery["sleep_id"]]
    assert _ids(await pipe.rows(DataType.CYCLE, 10001)) == [recovery["cycle_id"]]
    assert pipe.calls(RECOVERY_BY_CYCLE) == 1
    assert pipe.calls(CYCLE_BY_ID) == 1


async def test_workout_updated_refreshes_the_cycle_it_falls_in(pipe: Pipeline) -> None:
    workout = pipe.record(10002, "workout")
    await pipe.send_from_sim(10002, "workout.updated", workout["id"])
    await pipe.drain()
    assert _ids(await pipe.rows(DataType.WORKOUT, 10002)) == [workout["id"]]
    (cycle,) = await pipe.rows(DataType.CYCLE, 10002)
    assert cycle["start"] <= workout["start"]
    assert cycle.get("end") is None or workout["start"] < cycle["end"]
    assert pipe.calls(CYCLES) == 1


async def test_deletes_remove_rows_and_a_sleep_takes_its_recovery(pipe: Pipeline) -> None:
    recovery = pipe.record(10001, "recovery")
    workout = pipe.record(10001, "workout")
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.send_from_sim(10001, "workout.updated", workout["id"])
    await pipe.drain()
    assert len(await pipe.rows(DataType.RECOVERY, 10001)) == 1
    calls = pipe.sim.sim.counters.total
    await pipe.send_from_sim(10001, "sleep.deleted", recovery["sleep_id"])
    await pipe.send_from_sim(10001, "workout.deleted", workout["id"])
    await pipe.drain()
    assert await pipe.rows(DataType.SLEEP, 10001) == []
    assert await pipe.rows(DataType.RECOVERY, 10001) == []
    assert await pipe.rows(DataType.WORKOUT, 10001) == []
    assert len(await pipe.rows(DataType.CYCLE, 10001)) >= 1  # cycles have no delete events
    assert pipe.sim.sim.counters.total == calls  # deletes fetch nothing


async def test_recovery_deleted_removes_the_recovery_by_its_sleep(pipe: Pipeline) -> None:
    recovery = pipe.record(10001, "recovery")
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    await pipe.send_from_sim(10001, "recovery.deleted", recovery["sleep_id"])
    await pipe.drain()
    assert await pipe.rows(DataType.RECOVERY, 10001) == []
    assert len(await pipe.rows(DataType.SLEEP, 10001)) == 1


async def test_a_record_gone_at_whoop_is_removed(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    pipe.sim.sim.world.data(10001).delete("sleep", sleep["id"])
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    assert await pipe.rows(DataType.SLEEP, 10001) == []
    assert [e.status for e in await pipe.events()] == ["done", "done"]


async def test_the_same_event_five_times_is_fetched_once(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    body = {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "same-1"}
    for _ in range(5):
        assert (await pipe.post(body)).status_code == 204
    await pipe.drain()
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert await pipe.event_count() == 1
    assert len(await pipe.rows(DataType.SLEEP, 10001)) == 1


async def test_unknown_type_and_unknown_user_are_recorded_and_fetch_nothing(
    pipe: Pipeline,
) -> None:
    record_id = str(uuid.uuid4())
    unknown_type = {"user_id": 10001, "id": record_id, "type": "body.updated", "trace_id": "u-1"}
    unknown_user = {"user_id": 999, "id": record_id, "type": "sleep.updated", "trace_id": "u-2"}
    assert (await pipe.post(unknown_type)).status_code == 204
    assert (await pipe.post(unknown_user)).status_code == 204
    await pipe.drain()
    assert pipe.sim.sim.counters.total == 0
    statuses = {e.trace_id: (e.status, e.last_error) for e in await pipe.events()}
    assert statuses["u-1"][0] == EventStatus.IGNORED.value
    assert statuses["u-2"] == (EventStatus.IGNORED.value, "unknown user")


async def test_a_version_fetched_before_the_deletion_does_not_bring_the_record_back(
    pipe: Pipeline,
) -> None:
    """The job of a later sleep.updated reads a version WHOOP had before it deleted the sleep
    (the simulator still serves it): the deleted sleep and its recovery stay deleted."""
    recovery = pipe.record(10001, "recovery")
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    await pipe.send_from_sim(10001, "sleep.deleted", recovery["sleep_id"])
    await pipe.drain()
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    assert await pipe.rows(DataType.SLEEP, 10001) == []
    assert await pipe.rows(DataType.RECOVERY, 10001) == []
    assert [e.status for e in await pipe.events()] == ["done", "done", "done"]
