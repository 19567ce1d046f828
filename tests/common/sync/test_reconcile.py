"""Reconciliation (SPEC §4.2) against the simulator over real HTTP, on both backends: the pass
yielding to interactive reads when the budget is short, and PENDING_SCORE records fetched again.
The audit, pending backfills and per-user isolation are in test_audit.py."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from common.db.models import WhoopConnection
from common.db.repositories import (
    ChannelRepository,
    ConnectionRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.db.repositories.record_kinds import KINDS
from common.db.types import utcnow
from common.ratelimit import Priority
from common.sync.jobs import refetch_pending_scores
from common.sync.jobs.reconcile import reconcile
from common.types import ConnectionStatus, DataType, Trigger
from tests.common.sync.harness import Pipeline, connected

COLLECTIONS = {
    DataType.CYCLE: "GET /v2/cycle",
    DataType.SLEEP: "GET /v2/activity/sleep",
    DataType.RECOVERY: "GET /v2/recovery",
    DataType.WORKOUT: "GET /v2/activity/workout",
}


def _collection_calls(pipe: Pipeline) -> dict[DataType, int]:
    return {data_type: pipe.calls(endpoint) for data_type, endpoint in COLLECTIONS.items()}


async def _sync_now(pipe: Pipeline, user_id: uuid.UUID, data_type: DataType) -> None:
    async with pipe.ctx.session_factory() as session:
        result = await pipe.ctx.service(session).sync_collection(
            user_id,
            data_type,
            trigger=Trigger.READ,
            start=utcnow() - timedelta(days=1),
            priority=Priority.INTERACTIVE,
        )
        await session.commit()
    assert result.ok, result.error


async def _set_status(pipe: Pipeline, user_id: uuid.UUID, status: ConnectionStatus) -> None:
    async with pipe.ctx.session_factory() as session:
        await ConnectionRepository(session).set_status(user_id, status)
        await session.commit()


@pytest.fixture
async def small_budget(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """A pipeline whose app-wide budget is 100 calls a minute, one member connected."""
    async with connected(
        backend, database_url, redis_url, (10001,), whoop_rate_limit_per_minute=100
    ) as running:
        yield running


async def _spend(pipe: Pipeline, calls: int) -> None:
    """Use up part of the shared budget, as interactive reads elsewhere would."""
    for _ in range(calls):
        await pipe.ctx.limiter.acquire(Priority.INTERACTIVE)


async def test_reconcile_yields_when_the_shared_budget_is_short(small_budget: Pipeline) -> None:
    pipe = small_budget
    await _spend(pipe, 80)  # 20 left: inside the quarter kept for interactive reads
    report = await reconcile(pipe.ctx, now=utcnow() + timedelta(hours=1))
    assert (report.audited, report.backfills, report.yielded) == (0, 0, True)
    assert pipe.sim.sim.counters.total == 0


async def test_reconcile_audits_while_the_budget_lasts(small_budget: Pipeline) -> None:
    pipe = small_budget
    await _spend(pipe, 60)  # 40 left: an audit (four one-page syncs) fits above the 25 reserved
    async with pipe.ctx.session_factory() as session:  # the one user is due for its audit
        await session.execute(update(WhoopConnection).values(backfill_pending_since=None))
        await ChannelRepository(session).move_audit(
            None, wide=False, at=utcnow() - timedelta(days=7)
        )
        await session.commit()
    report = await reconcile(pipe.ctx)
    assert (report.audited, report.failures) == (1, 0)
    assert pipe.sim.sim.counters.total == 4
    async with pipe.ctx.session_factory() as session:
        states = await SyncLogRepository(session).for_user(pipe.users[10001])
    assert {s.sync_status for s in states.values()} == {"success"}
    assert len(states) == 4


PENDING_KINDS = [
    (DataType.SLEEP, "sleep", "id", "GET /v2/activity/sleep/{sleepId}"),
    (DataType.WORKOUT, "workout", "id", "GET /v2/activity/workout/{workoutId}"),
    (DataType.RECOVERY, "recovery", "cycle_id", "GET /v2/cycle/{cycleId}/recovery"),
]


async def _patch(pipe: Pipeline, kind: str, key: Any, changes: dict[str, Any]) -> dict[str, Any]:
    url = f"{pipe.sim.base_url}/_sim/users/10001/{kind}/{key}"
    answer = await pipe.http.patch(url, params={"webhook": "false"}, json=changes)
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()["record"]
    return record


async def _written_hours_ago(pipe: Pipeline, data_type: DataType, hours: float) -> None:
    """Make the user's cached records of a type look written `hours` ago."""
    table = KINDS[data_type].table
    async with pipe.ctx.session_factory() as session:
        await session.execute(
            update(table)
            .where(table.c.user_id == pipe.users[10001])
            .values(synced_at=utcnow() - timedelta(hours=hours))
        )
        await session.commit()


async def test_a_pending_record_written_recently_waits_for_its_webhook(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    pending = await _patch(pipe, "sleep", sleep["id"], {"score_state": "PENDING_SCORE"})
    async with pipe.ctx.session_factory() as session:
        await RecordRepository(session, DataType.SLEEP).upsert(pipe.users[10001], [pending])
        await session.commit()
    pipe.sim.sim.reset_counters()
    assert await refetch_pending_scores(pipe.job_ctx(None)) == 0
    assert pipe.calls("GET /v2/activity/sleep/{sleepId}") == 0


@pytest.mark.parametrize(("data_type", "kind", "key", "endpoint"), PENDING_KINDS)
async def test_a_pending_score_record_is_fetched_again_and_becomes_scored(
    pipe: Pipeline, data_type: DataType, kind: str, key: str, endpoint: str
) -> None:
    target = copy.deepcopy(pipe.record(10001, kind))  # the simulator edits its own dict in place
    assert target.get("score_state") == "SCORED"
    other = pipe.record(10001, kind, 1)
    pending = await _patch(pipe, kind, target[key], {"score_state": "PENDING_SCORE"})
    assert "score" not in pending
    async with pipe.ctx.session_factory() as session:
        await RecordRepository(session, data_type).upsert(pipe.users[10001], [pending, other])
        await session.commit()
    await _written_hours_ago(pipe, data_type, 3)
    # The score is given: the simulator's PATCH cannot generate a recovery score (KeyError 'start').
    scored = {"score_state": "SCORED", "score": target["score"]}
    rescored = await _patch(pipe, kind, target[key], scored)
    pipe.sim.sim.reset_counters()
    assert await refetch_pending_scores(pipe.job_ctx(None)) == 1
    assert pipe.calls(endpoint) == 1  # only the pending record, not the scored one
    async with pipe.ctx.session_factory() as session:
        stored_key = target[key] if data_type is DataType.RECOVERY else uuid.UUID(target[key])
        stored = await RecordRepository(session, data_type).get(stored_key)
    assert stored is not None
    assert stored["score_state"] == "SCORED"
    assert stored["score"] == rescored["score"]
    assert stored["updated_at"] == rescored["updated_at"]


async def test_a_record_still_pending_at_whoop_stays_pending(pipe: Pipeline) -> None:
    sleep = pipe.record(10001, "sleep")
    pending = await _patch(pipe, "sleep", sleep["id"], {"score_state": "PENDING_SCORE"})
    async with pipe.ctx.session_factory() as session:
        await RecordRepository(session, DataType.SLEEP).upsert(pipe.users[10001], [pending])
        await session.commit()
    await _written_hours_ago(pipe, DataType.SLEEP, 3)
    assert await refetch_pending_scores(pipe.job_ctx(None)) == 0
    assert pipe.calls("GET /v2/activity/sleep/{sleepId}") == 1
    # Asked once, it waits another threshold before WHOOP is asked again.
    assert await refetch_pending_scores(pipe.job_ctx(None)) == 0
    assert pipe.calls("GET /v2/activity/sleep/{sleepId}") == 1
    async with pipe.ctx.session_factory() as session:
        keys = await RecordRepository(session, DataType.SLEEP).keys_in_state(
            pipe.users[10001], "PENDING_SCORE"
        )
    assert [str(k) for k in keys] == [sleep["id"]]
