"""Each WHOOP event end to end over real HTTP: simulator → signed webhook → job → rows."""

from __future__ import annotations

import uuid
from typing import Any

from common.db.models import SyncLog
from common.db.repositories import SyncLogRepository
from common.types import DataType, EventStatus
from tests.common.sync.harness import SLEEP_BY_ID, Pipeline

RECOVERY_BY_CYCLE = "GET /v2/cycle/{cycleId}/recovery"
CYCLE_BY_ID = "GET /v2/cycle/{cycleId}"
CYCLES = "GET /v2/cycle"


def _ids(rows: list[dict[str, object]], key: str = "id") -> list[object]:
    return [row[key] for row in rows]


def _night(pipe: Pipeline, whoop_user_id: int) -> dict[str, Any]:
    """The simulated member's newest night's sleep (not a nap)."""
    sleeps = pipe.sim.sim.world.data(whoop_user_id).kinds["sleep"].values()
    return max((r.body for r in sleeps if not r.body["nap"]), key=lambda b: str(b["start"]))


def _nap(pipe: Pipeline, whoop_user_id: int) -> dict[str, Any]:
    """One of the simulated member's naps."""
    sleeps = pipe.sim.sim.world.data(whoop_user_id).kinds["sleep"].values()
    return next(r.body for r in sleeps if r.body["nap"])


async def _sync_state(pipe: Pipeline, whoop_user_id: int, data_type: DataType) -> SyncLog | None:
    async with pipe.ctx.session_factory() as session:
        return await SyncLogRepository(session).get(pipe.users[whoop_user_id], data_type)


async def test_a_new_nights_sleep_refreshes_the_newest_cycles_once(pipe: Pipeline) -> None:
    sleep = _night(pipe, 10001)
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    assert _ids(await pipe.rows(DataType.SLEEP, 10001)) == [sleep["id"]]
    assert sleep["cycle_id"] in _ids(await pipe.rows(DataType.CYCLE, 10001))
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert pipe.calls(CYCLES) == 1  # one page of the newest cycles
    assert pipe.calls(CYCLE_BY_ID) == 0
    assert pipe.sim.sim.counters.total == 2
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value
    # The page was a sync of the newest cycles: it confirms the type. The sleep, fetched by id,
    # confirms nothing: only its last fetch moves.
    cycle_state = await _sync_state(pipe, 10001, DataType.CYCLE)
    assert cycle_state is not None
    assert cycle_state.last_sync_at is not None
    assert cycle_state.last_sync_at >= event.received_at
    sleep_state = await _sync_state(pipe, 10001, DataType.SLEEP)
    assert sleep_state is not None
    assert (sleep_state.last_sync_at, sleep_state.sync_status) == (None, "success")
    assert sleep_state.last_fetch_at is not None


async def test_an_update_of_a_cached_sleep_fetches_no_cycle(pipe: Pipeline) -> None:
    sleep = _night(pipe, 10001)
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    pipe.sim.sim.reset_counters()
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert pipe.sim.sim.counters.total == 1


async def test_a_nap_fetches_no_cycle(pipe: Pipeline) -> None:
    nap = _nap(pipe, 10001)
    await pipe.send_from_sim(10001, "sleep.updated", nap["id"])
    await pipe.drain()
    assert _ids(await pipe.rows(DataType.SLEEP, 10001)) == [nap["id"]]
    assert await pipe.rows(DataType.CYCLE, 10001) == []
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert pipe.sim.sim.counters.total == 1


async def test_recovery_updated_follows_the_sleep_uuid_to_its_cycle(pipe: Pipeline) -> None:
    """The sleep is new here: it is a new night, whose cycles are refreshed once."""
    recovery = pipe.record(10001, "recovery")
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    (stored,) = await pipe.rows(DataType.RECOVERY, 10001)
    assert stored == recovery
    assert _ids(await pipe.rows(DataType.SLEEP, 10001)) == [recovery["sleep_id"]]
    assert recovery["cycle_id"] in _ids(await pipe.rows(DataType.CYCLE, 10001))
    assert pipe.calls(RECOVERY_BY_CYCLE) == 1
    assert pipe.calls(CYCLE_BY_ID) == 0
    assert pipe.calls(CYCLES) == 1
    assert pipe.sim.sim.counters.total == 3


async def test_a_recovery_of_a_cached_sleep_fetches_the_recovery_alone(pipe: Pipeline) -> None:
    recovery = pipe.record(10001, "recovery")
    await pipe.send_from_sim(10001, "sleep.updated", recovery["sleep_id"])
    await pipe.drain()
    pipe.sim.sim.reset_counters()
    await pipe.send_from_sim(10001, "recovery.updated", recovery["sleep_id"])
    await pipe.drain()
    assert (await pipe.rows(DataType.RECOVERY, 10001)) == [recovery]
    assert pipe.calls(RECOVERY_BY_CYCLE) == 1
    assert pipe.sim.sim.counters.total == 1


async def test_workout_updated_fetches_the_workout_alone(pipe: Pipeline) -> None:
    workout = pipe.record(10002, "workout")
    await pipe.send_from_sim(10002, "workout.updated", workout["id"])
    await pipe.drain()
    assert _ids(await pipe.rows(DataType.WORKOUT, 10002)) == [workout["id"]]
    assert await pipe.rows(DataType.CYCLE, 10002) == []
    assert pipe.calls(CYCLES) == 0
    assert pipe.sim.sim.counters.total == 1
    state = await _sync_state(pipe, 10002, DataType.WORKOUT)
    assert state is not None
    assert state.last_sync_at is None  # a by-id fetch confirms nothing


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
