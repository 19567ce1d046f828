"""Nothing lost: Redis down at receipt, a worker killed mid-job, older fetches, a burst of 500."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common.db.repositories import RecordRepository
from common.db.repositories.record_kinds import parse_time
from common.queue import ArqQueue
from common.sync.inbox import record_event
from common.sync.jobs import UNSENT_GRACE, sweep_inbox
from common.types import DataType, EventStatus
from services.simulator.server import free_port
from tests.common.db.samples import iso
from tests.common.sync.harness import SLEEP_BY_ID, Pipeline, arq_queue, connected, pipeline

ROOT = Path(__file__).resolve().parents[3]


async def _sweep(pipe: Pipeline) -> int:
    """The sweeper once the events are older than INBOX_SWEEP_SECONDS (1 s here)."""
    await asyncio.sleep(1.1)
    queue = pipe.inproc if pipe.inproc is not None else ArqQueue(pipe.ctx.redis)  # type: ignore[arg-type]
    return await sweep_inbox(pipe.job_ctx(queue))


async def test_events_arriving_while_the_queue_is_down_are_all_processed_later(
    pipe: Pipeline,
) -> None:
    # Production: Redis unreachable (a closed port). Embedded: the process died before handing off.
    down = arq_queue(f"redis://127.0.0.1:{free_port()}/0") if pipe.backend == "postgresql" else None
    pipe.use_queue(down)
    sleeps = [pipe.record(10001, "sleep", i) for i in range(5)]
    for sleep in sleeps:
        await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    assert {d["status"] for d in pipe.sim.sim.webhooks.as_json()["deliveries"]} == {"delivered"}
    events = await pipe.events()
    assert len(events) == 5
    assert {e.status for e in events} == {EventStatus.PENDING.value}
    assert await _sweep(pipe) == 5
    await pipe.drain()
    assert {e.status for e in await pipe.events()} == {EventStatus.DONE.value}
    stored = {row["id"] for row in await pipe.rows(DataType.SLEEP, 10001)}
    assert stored == {s["id"] for s in sleeps}


@pytest.fixture
async def patient(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """The pipeline with the production sweep interval, or longer: an hour."""
    async with connected(
        backend, database_url, redis_url, (10001,), inbox_sweep_seconds=3600
    ) as running:
        yield running


async def test_what_the_queue_refused_is_swept_at_once_a_lost_job_after_the_interval(
    patient: Pipeline,
) -> None:
    """Redis' return is followed within one sweep tick by the events recorded without it; an event
    that was handed off waits INBOX_SWEEP_SECONDS, its job may still be queued."""
    down = (
        arq_queue(f"redis://127.0.0.1:{free_port()}/0") if patient.backend == "postgresql" else None
    )
    patient.use_queue(down)
    refused = [patient.record(10001, "sleep", i) for i in range(3)]
    for sleep in refused:
        await patient.send_from_sim(10001, "sleep.updated", sleep["id"])
    handed_off = patient.record(10001, "sleep", 3)
    await record_event(
        patient.ctx.engine,
        trace_id="handed-off-1",
        event_type="sleep.updated",
        whoop_user_id=10001,
        record_id=handed_off["id"],
        payload="{}",
        will_enqueue=True,  # noted as handed off: a queue that lost the job afterwards
    )
    await asyncio.sleep(UNSENT_GRACE.total_seconds() + 0.1)
    queue = patient.inproc if patient.inproc is not None else ArqQueue(patient.ctx.redis)  # type: ignore[arg-type]
    assert await sweep_inbox(patient.job_ctx(queue)) == 3
    await patient.drain()
    status = {e.record_id: e.status for e in await patient.events()}
    assert status == {s["id"]: EventStatus.DONE.value for s in refused} | {
        handed_off["id"]: EventStatus.PENDING.value
    }


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_events_whose_jobs_wait_in_a_queue_that_is_behind_are_not_handed_on_again(
    pipe: Pipeline, redis: aioredis.Redis
) -> None:
    """A morning burst puts the queue behind by more than INBOX_SWEEP_SECONDS (1 s here): its jobs
    are waiting, not lost, and the sweep adds no copy of them. Once Redis has lost them (restarted
    without its data), the same sweep hands them on."""
    queue = ArqQueue(pipe.ctx.redis)  # type: ignore[arg-type]
    sleeps = [pipe.record(10001, "sleep", i) for i in range(3)]
    for sleep in sleeps:
        await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    assert await redis.zcard("arq:queue") == 3  # handed off; no worker runs yet
    await asyncio.sleep(1.1)
    assert await sweep_inbox(pipe.job_ctx(queue)) == 0
    assert await redis.zcard("arq:queue") == 3
    await redis.flushdb()
    assert await sweep_inbox(pipe.job_ctx(queue)) == 3
    await pipe.drain()
    assert {e.status for e in await pipe.events()} == {EventStatus.DONE.value}
    assert pipe.calls(SLEEP_BY_ID) == 3


async def test_an_older_fetch_never_overwrites_a_newer_row(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    updated = parse_time(sleep["updated_at"])
    assert updated is not None
    newer = sleep | {"updated_at": iso(updated + timedelta(hours=1)), "score_state": "UNSCORABLE"}
    newer.pop("score", None)
    async with pipe.ctx.session_factory() as session:
        await RecordRepository(session, DataType.SLEEP).upsert(pipe.users[10001], [newer])
        await session.commit()
    await pipe.send_from_sim(10001, "sleep.updated", sleep["id"])
    await pipe.drain()
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert await pipe.rows(DataType.SLEEP, 10001) == [newer]


@pytest.fixture
async def crowd(
    backend: str, pg_url: str, sqlite_url: str, redis_url: str
) -> AsyncIterator[Pipeline]:
    """Enough members for 500 distinct sleeps."""
    url = pg_url if backend == "postgresql" else sqlite_url
    async with pipeline(backend, url, redis_url, users=20, days=30) as running:
        for whoop_user_id in list(running.sim.sim.world.profiles):
            await running.connect(whoop_user_id)
        running.sim.sim.reset_counters()
        yield running


# The production backend only: on SQLite the 500 inbox writes queue behind one write lock, which
# the other embedded tests cover at a size that keeps the suite fast.
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_500_concurrent_webhooks_for_distinct_records_give_500_rows(crowd: Pipeline) -> None:
    bodies = []
    for whoop_user_id in crowd.users:
        for sleep_id in crowd.sim.sim.world.data(whoop_user_id).kinds["sleep"]:
            bodies.append({"user_id": whoop_user_id, "id": sleep_id, "type": "sleep.updated"})
    bodies = [b | {"trace_id": f"burst-{i}"} for i, b in enumerate(bodies[:500])]
    assert len(bodies) == 500
    answers = await asyncio.gather(*(crowd.post(body) for body in bodies))
    assert {a.status_code for a in answers} == {204}
    await crowd.drain()
    if await crowd.sweep():  # what did not reach Redis within the webhook's enqueue budget
        await crowd.drain()
    assert crowd.calls(SLEEP_BY_ID) == 500  # each record fetched exactly once
    total = 0
    for whoop_user_id in crowd.users:
        total += len(await crowd.rows(DataType.SLEEP, whoop_user_id))
    assert total == 500
    assert {e.status for e in await crowd.events()} == {EventStatus.DONE.value}


async def _wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_worker_killed_mid_job_leaves_the_event_to_be_completed(
    pipe: Pipeline, redis: aioredis.Redis
) -> None:
    sleep = pipe.record(10001, "sleep")
    faults = f"{pipe.sim.base_url}/_sim/faults"
    await pipe.http.post(faults, json={"path": "*/v2/activity/sleep/*", "latency_ms": 2000})
    assert (
        await pipe.post(
            {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "kill-1"}
        )
    ).status_code == 204
    env = {**os.environ, **pipe.env(), "WHOOPSYNC_LOG_FORMAT": "json"}
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_until(lambda: pipe.calls(SLEEP_BY_ID) == 1)  # the slow call is under way
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    await pipe.http.delete(faults)
    (event,) = await pipe.events()
    assert (event.status, event.attempts) == (EventStatus.PENDING.value, 1)
    # arq hands a dead worker's job on once its in-progress mark expires: fast-forward that.
    for key in await redis.keys("arq:in-progress:*"):
        await redis.delete(key)
    await pipe.drain()
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value
    assert [row["id"] for row in await pipe.rows(DataType.SLEEP, 10001)] == [sleep["id"]]
    # A new night's sleep refreshes the newest cycles once (SPEC §4): its own among them.
    cycles = await pipe.rows(DataType.CYCLE, 10001)
    assert sleep["cycle_id"] in {row["id"] for row in cycles}
