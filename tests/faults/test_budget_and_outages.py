"""A spent WHOOP budget and a long WHOOP outage only delay events: none is failed or lost."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable

from prometheus_client import REGISTRY

from common.queue import InProcessQueue
from common.ratelimit import LocalRateLimiter, Priority
from common.sync.inbox import PROCESS_EVENT
from common.sync.jobs import EVENT_TRIES, JOBS, reconcile_users, sweep_inbox
from common.sync.jobs.sweep import resume_pending
from common.types import EventStatus
from common.whoop.client import WhoopClient
from common.whoop.errors import WhoopRateLimited
from common.whoop.retry import RetryPolicy
from tests.common.sync.harness import Pipeline

FAULTS = "/_sim/faults"
DAY = 3.0  # seconds: a day of the budget, shrunk


def _queue(pipe: Pipeline, client: WhoopClient) -> InProcessQueue:
    """An in-process queue whose jobs call WHOOP through `client`, with the sweeper and the
    reconciliation pass as crons."""
    sync = dataclasses.replace(pipe.ctx, whoop=client, limiter=client.limiter)
    queue = InProcessQueue(JOBS, {"sync": sync}, concurrency=8)
    queue.start()
    queue.every(0.5, sweep_inbox, timeout=30, name="sweep_inbox")
    queue.every(1.0, reconcile_users, timeout=30, name="reconcile")
    pipe.use_queue(queue)
    return queue


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        while True:
            if check():
                return
            await asyncio.sleep(0.1)


def _parked() -> float:
    """How many times an event was parked in this process so far."""
    value = REGISTRY.get_sample_value(
        "whoopsync_jobs_total", {"job": PROCESS_EVENT, "outcome": "parked"}
    )
    return value or 0.0


async def _post_sleeps(pipe: Pipeline, count: int) -> None:
    sleeps = [pipe.record(w, "sleep", i) for w in (10001, 10002) for i in range(10)]
    for n in range(count):
        record = sleeps[n % len(sleeps)]
        body = {
            "user_id": record["user_id"],
            "id": record["id"],
            "type": "sleep.updated",
            "trace_id": f"t-{n}-{uuid.uuid4().hex[:6]}",
        }
        assert (await pipe.post(body)).status_code == 204


async def _settled(pipe: Pipeline, count: int) -> list[tuple[str, int]]:
    """Wait until every event is closed; (status, attempts) of each."""
    async with asyncio.timeout(120):
        while True:
            events = await pipe.events()
            if len(events) == count and all(e.status != EventStatus.PENDING for e in events):
                return [(e.status, e.attempts) for e in events]
            await asyncio.sleep(0.2)


async def test_a_spent_day_budget_only_delays_pending_events_to_the_next_day(
    pipe: Pipeline,
) -> None:
    limiter = LocalRateLimiter(1_000_000, 400, day_window=DAY, max_wait={p: 0.05 for p in Priority})
    with_budget = WhoopClient(
        pipe.ctx.http,
        pipe.settings.whoop_api_base_url,
        limiter,
        wait_budget={p: 0.05 for p in Priority},
    )
    spent = 0
    while True:  # the day's background budget goes to something else
        try:
            await limiter.acquire(Priority.BACKGROUND, max_wait=0)
        except WhoopRateLimited:
            break
        spent += 1
    assert spent > 0
    queue = _queue(pipe, with_budget)
    try:
        await _post_sleeps(pipe, 200)
        outcomes = await _settled(pipe, 200)
    finally:
        await queue.close()
    assert {status for status, _ in outcomes} == {EventStatus.DONE.value}
    # Waiting for the budget was never a try: each event was tried once, to its outcome.
    assert {attempts for _, attempts in outcomes} == {1}


async def test_every_event_is_processed_after_a_long_whoop_outage(pipe: Pipeline) -> None:
    fast = WhoopClient(
        pipe.ctx.http,
        pipe.settings.whoop_api_base_url,
        pipe.ctx.limiter,
        retry=RetryPolicy(attempts=1),
    )
    answer = await pipe.http.post(
        f"{pipe.sim.base_url}{FAULTS}", json={"path": "*/v2/activity/sleep/*", "status": 503}
    )
    assert answer.status_code == 201
    parked_before = _parked()
    queue = _queue(pipe, fast)
    try:
        await _post_sleeps(pipe, 10)
        # The outage outlasts every event's tries (ten minutes at the scaled back-off): each is
        # parked, given back by the reconciliation pass, and parked again while it lasts.
        await _until(lambda: _parked() - parked_before >= 10)
        assert {e.status for e in await pipe.events()} == {EventStatus.PENDING.value}
        await pipe.http.delete(f"{pipe.sim.base_url}{FAULTS}")  # WHOOP is back
        outcomes = await _settled(pipe, 10)
    finally:
        await queue.close()
    assert {status for status, _ in outcomes} == {EventStatus.DONE.value}
    assert all(attempts <= EVENT_TRIES for _, attempts in outcomes)


async def test_events_the_in_process_queue_held_at_a_stop_are_handed_on_at_the_next_start(
    pipe: Pipeline,
) -> None:
    first = InProcessQueue(JOBS, {"sync": pipe.ctx})  # never started: stopped before running
    pipe.use_queue(first)
    await _post_sleeps(pipe, 3)
    await first.close()
    assert {e.status for e in await pipe.events()} == {EventStatus.PENDING.value}
    second = InProcessQueue(JOBS, {"sync": pipe.ctx})
    second.start()
    try:
        assert await resume_pending(second, pipe.ctx.session_factory) == 3
        await second.join()
    finally:
        await second.close()
    assert {e.status for e in await pipe.events()} == {EventStatus.DONE.value}
