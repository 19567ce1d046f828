"""The sync service: collection syncs never raise, every attempt lands in the sync log, failed events
stay visible and replayable."""

from __future__ import annotations

from common.db.repositories import SyncLogRepository
from common.ratelimit import Priority
from common.sync.jobs import EVENT_TRIES, process_webhook_event
from common.sync.results import SyncResult
from common.types import DataType, EventStatus, SyncStatus, Trigger
from services.commands.replay import replay
from tests.common.sync.harness import Pipeline

FAULTS = "/_sim/faults"


async def _sync(pipe: Pipeline, data_type: DataType) -> SyncResult:
    async with pipe.ctx.session_factory() as session:
        result = await pipe.ctx.service(session).sync_collection(
            pipe.users[10001],
            data_type,
            trigger=Trigger.READ,
            limit=10,
            priority=Priority.INTERACTIVE,
        )
        await session.commit()
    return result


async def test_sync_collection_writes_records_and_the_sync_log(pipe: Pipeline) -> None:
    result = await _sync(pipe, DataType.CYCLE)
    assert (result.status, result.fetched, result.written, result.error) == (
        SyncStatus.SUCCESS,
        10,
        10,
        None,
    )
    assert len(await pipe.rows(DataType.CYCLE, 10001)) == 10
    async with pipe.ctx.session_factory() as session:
        state = await SyncLogRepository(session).get(pipe.users[10001], DataType.CYCLE)
    assert state is not None
    assert (state.sync_status, state.records_synced) == ("success", 10)
    assert state.last_sync_at is not None


async def test_sync_collection_returns_whoops_failure_instead_of_raising(pipe: Pipeline) -> None:
    await pipe.http.post(
        f"{pipe.sim.base_url}{FAULTS}", json={"path": "*/v2/recovery", "status": 400}
    )
    result = await _sync(pipe, DataType.RECOVERY)
    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert "400" in result.error.reason
    async with pipe.ctx.session_factory() as session:
        state = await SyncLogRepository(session).get(pipe.users[10001], DataType.RECOVERY)
    assert state is not None
    assert (state.sync_status, state.last_sync_at) == ("failed", None)
    assert state.error_message is not None


async def test_a_refused_refresh_reads_as_reauthorization_required(pipe: Pipeline) -> None:
    base = f"{pipe.sim.base_url}/_sim/users/10001"
    await pipe.http.post(f"{base}/expire-access-token")
    await pipe.http.post(f"{base}/revoke-refresh-token")
    result = await _sync(pipe, DataType.SLEEP)
    assert result.status is SyncStatus.REAUTHORIZATION_REQUIRED


async def test_a_failed_event_is_kept_with_its_error_and_can_be_replayed(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    fault = {"path": "*/v2/activity/sleep/*", "status": 400}
    await pipe.http.post(f"{pipe.sim.base_url}{FAULTS}", json=fault)
    pipe.use_queue(None)  # run the job by hand, on its last try
    await pipe.post(
        {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "f-1"}
    )
    (event,) = await pipe.events()
    ctx = pipe.job_ctx(None) | {"job_try": EVENT_TRIES}
    assert await process_webhook_event(ctx, event.id) == "failed"
    (event,) = await pipe.events()
    assert event.status == EventStatus.FAILED.value
    assert "400" in (event.last_error or "")
    async with pipe.ctx.session_factory() as session:
        state = await SyncLogRepository(session).get(pipe.users[10001], DataType.SLEEP)
    assert state is not None
    assert state.sync_status == "failed"

    await pipe.http.delete(f"{pipe.sim.base_url}{FAULTS}")
    reopened, enqueued = await replay(pipe.settings, since=None, status=EventStatus.FAILED)
    assert reopened == 1
    if pipe.inproc is not None:  # embedded: the sweeper hands reopened events to the queue
        assert enqueued == 0
        pipe.use_queue(pipe.inproc)
        assert await process_webhook_event(pipe.job_ctx(pipe.inproc), event.id) == "done"
    else:
        assert enqueued == 1
        await pipe.drain()
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value
    assert len(await pipe.rows(DataType.SLEEP, 10001)) == 1
