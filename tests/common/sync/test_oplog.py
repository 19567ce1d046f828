"""What the operators' overview reads back, written where it happens, on each backend: WHOOP calls
per hour under the trigger of the job that made them, and audit misses and reconciliation failures
as incidents."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import update

from common.db.models import WhoopConnection
from common.db.repositories import ChannelRepository
from common.db.repositories.ops import AUDIT_MISS, RECONCILE_FAILURE, OpsRepository
from common.db.types import utcnow
from common.sync.jobs import backfill_user
from common.sync.jobs.backfill import run_backfill
from common.sync.jobs.reconcile import reconcile
from common.sync.oplog import CallLog, tag_calls
from tests.common.sync.harness import Pipeline

LATER = timedelta(hours=1)


async def _calls(pipe: Pipeline) -> dict[str, int]:
    async with pipe.ctx.session_factory() as session:
        rows = await OpsRepository(session).calls_since(utcnow() - timedelta(hours=1))
    totals: dict[str, int] = {}
    for _, trigger, calls in rows:
        totals[trigger] = totals.get(trigger, 0) + calls
    return totals


async def _incidents(pipe: Pipeline, kind: str) -> int:
    async with pipe.ctx.session_factory() as session:
        return await OpsRepository(session).count_since(kind, utcnow() - timedelta(days=1))


async def test_calls_are_counted_under_their_jobs_trigger(pipe: Pipeline) -> None:
    await backfill_user(pipe.job_ctx(None), str(pipe.users[10001]))
    pipe.sim.sim.step(10001, "workout")
    async with asyncio.timeout(20):
        await pipe.sim.sim.webhooks.wait_idle()
    await pipe.drain()
    assert pipe.ctx.calls is not None
    await pipe.ctx.calls.flush()

    calls = await _calls(pipe)

    assert calls["backfill"] == 4  # a page of each type
    assert calls["webhook"] >= 1
    assert sum(calls.values()) == pipe.sim.sim.counters.total


async def test_each_task_counts_under_its_own_trigger(pipe: Pipeline) -> None:
    log = CallLog(pipe.ctx.session_factory, every=60)
    first, second = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"

    async def calls(trigger: str, count: int) -> None:
        tag_calls(trigger)
        for _ in range(count):
            log.note()

    await asyncio.gather(calls(first, 3), calls(second, 2))
    await log.aclose()

    totals = await _calls(pipe)
    assert (totals[first], totals[second]) == (3, 2)


async def test_an_audit_miss_and_a_failed_user_are_recorded(pipe: Pipeline) -> None:
    await pipe.connect(10002)
    for whoop_user_id in (10001, 10002):
        await run_backfill(pipe.ctx, pipe.users[whoop_user_id])
    await pipe.http.post(f"{pipe.sim.base_url}/_sim/webhook-loss", json={"share": 1})
    pipe.sim.sim.step(10001, "workout")  # its webhook is lost: the audit finds the workout
    async with asyncio.timeout(10):
        await pipe.sim.sim.webhooks.wait_idle()
    now = utcnow() + LATER
    async with pipe.ctx.session_factory() as session:
        await ChannelRepository(session).move_audit(None, wide=True, at=now - timedelta(days=7))
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == pipe.users[10002])
            .values(access_token_enc="not-a-fernet-token")
        )
        await session.commit()
    misses, failures = await _incidents(pipe, AUDIT_MISS), await _incidents(pipe, RECONCILE_FAILURE)

    report = await reconcile(pipe.ctx, now=now)

    assert (report.misses, report.failures) == (1, 1)
    assert await _incidents(pipe, AUDIT_MISS) == misses + 1
    assert await _incidents(pipe, RECONCILE_FAILURE) == failures + 1
