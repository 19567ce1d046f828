"""The worker's jobs over real HTTP on both backends: `backfill_user` (every collection, paged),
`sync_type`, and an event whose retries run out ending `failed`, then replayed by the real
`whoop-sync replay --status failed` once WHOOP answers again."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import Retry
from sqlalchemy import update

from common.db.models import WebhookEvent
from common.db.repositories import SyncLogRepository
from common.db.types import utcnow
from common.queue import ArqQueue, Queue
from common.sync.inbox import PARKED_RETRY_WINDOW
from common.sync.jobs import EVENT_TRIES, JOBS, backfill_user, process_webhook_event, sweep_inbox
from common.sync.jobs.reconcile import reconcile
from common.sync.jobs.sweep import UNSENT_GRACE, resume_pending
from common.sync.reconcile import RECONCILE_WINDOW
from common.types import DataType, EventStatus, Trigger
from common.whoop.client import WhoopClient
from common.whoop.retry import RetryPolicy
from tests.common.sync.harness import Pipeline, connected

CLI = str(Path(sys.executable).with_name("whoop-sync"))
FAULTS = "/_sim/faults"
COLLECTIONS = {
    DataType.CYCLE: "GET /v2/cycle",
    DataType.SLEEP: "GET /v2/activity/sleep",
    DataType.RECOVERY: "GET /v2/recovery",
    DataType.WORKOUT: "GET /v2/activity/workout",
}
TIME_FIELD = {"cycle": "start", "sleep": "start", "workout": "start", "recovery": "created_at"}


def _queue(pipe: Pipeline) -> Queue:
    """The queue jobs go through on this backend (arq on Redis, or the in-process one)."""
    if pipe.inproc is not None:
        return pipe.inproc
    assert pipe.ctx.redis is not None
    return ArqQueue(pipe.ctx.redis)  # type: ignore[arg-type]


def _no_retry_ctx(pipe: Pipeline) -> dict[str, Any]:
    """A job ctx whose WHOOP client gives up on a 5xx at once (the job's own retries remain)."""
    settings = pipe.settings
    fast = WhoopClient(
        pipe.ctx.http, settings.whoop_api_base_url, pipe.ctx.limiter, retry=RetryPolicy(attempts=1)
    )
    return pipe.job_ctx(None) | {"sync": dataclasses.replace(pipe.ctx, whoop=fast)}


async def _fault(pipe: Pipeline, path: str, status: int) -> None:
    answer = await pipe.http.post(
        f"{pipe.sim.base_url}{FAULTS}", json={"path": path, "status": status}
    )
    assert answer.status_code == 201, answer.text


async def _history(pipe: Pipeline, whoop_user_id: int) -> list[tuple[str, str, str]]:
    """(type, trigger, outcome) of every attempt of a member, oldest first."""
    async with pipe.ctx.session_factory() as session:
        attempts = await SyncLogRepository(session).history(pipe.users[whoop_user_id], limit=100)
    return [(a.data_type, a.trigger, a.outcome) for a in reversed(attempts)]


@pytest.fixture
async def deep(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """One member with 40 days of history and BACKFILL_DAYS=30: more than a page of cycles."""
    async with connected(
        backend, database_url, redis_url, (10001,), users=1, days=40, backfill_days=30
    ) as running:
        yield running


def _expected(pipe: Pipeline, kind: str, days: int) -> set[Any]:
    """The simulator's records of a kind that occurred within the last `days`, or were still
    going then (WHOOP's `start`: "after or during")."""
    since_ms = int((utcnow() - timedelta(days=days)).timestamp() * 1000)
    key = "cycle_id" if kind == "recovery" else "id"
    return {
        rec.body[key]
        for rec in pipe.sim.sim.world.data(10001).kinds[kind].values()
        if rec.during_or_after(since_ms)
    }


async def test_backfill_user_pulls_backfill_days_of_every_collection_across_pages(
    deep: Pipeline,
) -> None:
    await _queue(deep).enqueue("backfill_user", str(deep.users[10001]))
    await deep.drain()
    for data_type, endpoint in COLLECTIONS.items():
        kind = data_type.value
        expected = _expected(deep, kind, 30)
        key = "cycle_id" if kind == "recovery" else "id"
        stored = {row[key] for row in await deep.rows(data_type, 10001)}
        assert stored == expected, kind
        assert deep.calls(endpoint) == -(-len(expected) // 25), kind  # pages of 25
    assert len(_expected(deep, "cycle", 30)) > 25  # so the cycles needed a second page
    assert len(_expected(deep, "cycle", 40)) > len(_expected(deep, "cycle", 30))  # older ones left
    history = await _history(deep, 10001)
    assert sorted(history) == sorted((t.value, "backfill", "success") for t in COLLECTIONS)


async def test_backfill_with_one_type_failing_keeps_the_others_and_retries(
    deep: Pipeline,
) -> None:
    await _fault(deep, "*/v2/activity/workout", 503)
    ctx = _no_retry_ctx(deep)
    with pytest.raises(Retry):
        await backfill_user(ctx | {"job_try": 1}, str(deep.users[10001]))
    assert len(await deep.rows(DataType.CYCLE, 10001)) > 25  # committed per type
    assert await deep.rows(DataType.WORKOUT, 10001) == []
    last_try = JOBS["backfill_user"].max_tries
    assert await backfill_user(ctx | {"job_try": last_try}, str(deep.users[10001])) == "failed"
    outcomes = {(t, o) for t, _, o in await _history(deep, 10001)}
    assert ("workout", "failed") in outcomes
    assert ("cycle", "success") in outcomes


async def test_sync_type_syncs_one_collection_over_the_trailing_window(pipe: Pipeline) -> None:
    user_id = str(pipe.users[10001])
    await _queue(pipe).enqueue("sync_type", user_id, "sleep", "reconcile")
    await pipe.drain()
    assert pipe.calls(COLLECTIONS[DataType.SLEEP]) == 1
    assert pipe.sim.sim.counters.total == 1  # that type only
    rows = await pipe.rows(DataType.SLEEP, 10001)
    assert {row["id"] for row in rows} == _expected(pipe, "sleep", RECONCILE_WINDOW.days)
    assert rows
    assert await _history(pipe, 10001) == [("sleep", Trigger.RECONCILE.value, "success")]


@dataclasses.dataclass
class _Broken:
    """A sync context whose service meets a bug on every event."""

    inner: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def service(self, session: Any) -> Any:
        class Service:
            async def handle_event(self, *args: Any, **kwargs: Any) -> Any:
                raise ValueError("bad data")

        return Service()


async def _exhaust(pipe: Pipeline, event_id: int) -> None:
    """Run the event's job (one arq job id) through every try while WHOOP answers 503."""
    ctx = _no_retry_ctx(pipe) | {"job_id": "job-1"}
    for job_try in range(1, EVENT_TRIES):
        with pytest.raises(Retry):
            await process_webhook_event(ctx | {"job_try": job_try}, event_id)
        (event,) = await pipe.events()
        assert event.status == EventStatus.PENDING.value
    assert await process_webhook_event(ctx | {"job_try": EVENT_TRIES}, event_id) == "parked"


async def _replay_failed(pipe: Pipeline) -> str:
    """`whoop-sync replay --status failed` as a process, with the pipeline's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPSYNC_")} | pipe.env()
    process = await asyncio.create_subprocess_exec(
        CLI, "replay", "--status", "failed", env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode().strip()


async def test_an_event_out_of_retries_for_a_whoop_outage_is_parked_then_retried_by_reconcile(
    pipe: Pipeline,
) -> None:
    sleep = pipe.record(10001, "sleep")
    await _fault(pipe, "*/v2/activity/sleep/*", 503)
    pipe.use_queue(None)  # the jobs run by hand, try by try
    body = {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "out-1"}
    assert (await pipe.post(body)).status_code == 204
    (event,) = await pipe.events()
    await _exhaust(pipe, event.id)
    (event,) = await pipe.events()
    assert event.status == EventStatus.PENDING.value
    assert event.parked_at is not None
    assert "503" in (event.last_error or "")
    async with pipe.ctx.session_factory() as session:
        state = await SyncLogRepository(session).get(pipe.users[10001], DataType.SLEEP)
    assert state is not None
    assert (state.sync_status, state.last_sync_at) == ("failed", None)
    queue = pipe.inproc or _queue(pipe)
    factory = pipe.ctx.session_factory
    assert await resume_pending(queue, factory) == 0  # parked: not the sweeper's

    await pipe.http.delete(f"{pipe.sim.base_url}{FAULTS}")  # WHOOP answers again
    await reconcile(pipe.ctx)
    assert await resume_pending(queue, factory) == 1
    await pipe.drain()
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value
    assert sleep["id"] in {row["id"] for row in await pipe.rows(DataType.SLEEP, 10001)}


async def test_a_parked_event_is_retried_for_a_day_then_closed_failed_with_its_error(
    pipe: Pipeline,
) -> None:
    sleep = pipe.record(10001, "sleep")
    await _fault(pipe, "*/v2/activity/sleep/*", 503)  # WHOOP keeps failing the record
    pipe.use_queue(None)
    body = {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "day-1"}
    assert (await pipe.post(body)).status_code == 204
    (event,) = await pipe.events()
    await _exhaust(pipe, event.id)
    factory = pipe.ctx.session_factory
    async with factory() as session:  # the event was received just over a day ago
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event.id)
            .values(received_at=utcnow() - PARKED_RETRY_WINDOW - timedelta(minutes=1))
        )
        await session.commit()

    await reconcile(pipe.ctx)

    (event,) = await pipe.events()
    assert (event.status, event.parked_at) == (EventStatus.FAILED.value, None)
    assert "503" in (event.last_error or "")
    assert await resume_pending(pipe.inproc or _queue(pipe), factory) == 0


async def test_an_event_out_of_retries_for_a_bug_fails_visibly_and_replay_processes_it(
    pipe: Pipeline,
) -> None:
    sleep = pipe.record(10001, "sleep")
    pipe.use_queue(None)
    body = {"user_id": 10001, "id": sleep["id"], "type": "sleep.updated", "trace_id": "bug-1"}
    assert (await pipe.post(body)).status_code == 204
    (event,) = await pipe.events()
    ctx = pipe.job_ctx(None) | {"job_id": "job-1", "sync": _Broken(pipe.ctx)}
    for job_try in range(1, EVENT_TRIES):
        with pytest.raises(Retry):
            await process_webhook_event(ctx | {"job_try": job_try}, event.id)
    assert await process_webhook_event(ctx | {"job_try": EVENT_TRIES}, event.id) == "failed"
    (event,) = await pipe.events()
    assert (event.status, event.attempts) == (EventStatus.FAILED.value, EVENT_TRIES)
    assert "bad data" in (event.last_error or "")

    printed = await _replay_failed(pipe)
    assert printed.startswith("replayed 1 events")
    if pipe.inproc is not None:  # embedded: the sweeper of `serve` picks reopened events up
        pipe.use_queue(pipe.inproc)
        # The sweeper's tick comes later: the event is older than the grace it gives an event
        # that was never handed off (on a fast machine this test gets here within it).
        async with pipe.ctx.session_factory() as session:
            await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id)
                .values(received_at=utcnow() - UNSENT_GRACE - timedelta(seconds=1))
            )
            await session.commit()
        assert await sweep_inbox(pipe.job_ctx(pipe.inproc)) == 1
    await pipe.drain()
    (event,) = await pipe.events()
    assert event.status == EventStatus.DONE.value
    assert [row["id"] for row in await pipe.rows(DataType.SLEEP, 10001)] == [sleep["id"]]
    async with pipe.ctx.session_factory() as session:
        state = await SyncLogRepository(session).get(pipe.users[10001], DataType.SLEEP)
    assert state is not None
    assert state.sync_status == "success"
