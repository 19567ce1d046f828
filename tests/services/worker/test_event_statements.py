"""What one event costs the database (issue: one event, one commit): statements and commits of a
new night's `sleep.updated`, a `recovery.updated` and a `workout.updated` on PostgreSQL, counted
by listeners on the engine from the job's claim to the feed's drain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, select

from common.db.models import WebhookEvent
from common.queue import InProcessQueue
from common.sync.jobs import JOBS, process_webhook_event
from common.types import EventStatus
from tests.common.sync.harness import Pipeline

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

# The issue asked for at most 12 (22 before it). The claim reads the cache, the feed's drain is
# one statement, and the last guarded upsert carries its outbox rows, the sync log and the
# event's close.
MAX_STATEMENTS, MAX_COMMITS = 5, 3


@dataclass
class Counted:
    """SQL statements and commits seen on an engine."""

    statements: list[str] = field(default_factory=list)
    commits: int = 0


@contextmanager
def counting(pipe: Pipeline) -> Iterator[Counted]:
    """Count every statement and commit of the pipeline's engine while the block runs."""
    counted = Counted()
    engine = pipe.ctx.engine.sync_engine

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        counted.statements.append(" ".join(sql.split())[:120])

    def commit(_conn: Any) -> None:
        counted.commits += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


async def _recorded(pipe: Pipeline, event_type: str, record_id: str) -> int:
    """POST the signed webhook (no queue behind the receiver); the recorded event's id."""
    pipe.use_queue(None)
    answer = await pipe.post(
        {"user_id": 10001, "id": record_id, "type": event_type, "trace_id": uuid.uuid4().hex}
    )
    assert answer.status_code == 204, answer.text
    async with pipe.ctx.session_factory() as session:
        found = await session.scalar(
            select(WebhookEvent.id)
            .where(WebhookEvent.record_id == record_id)
            .order_by(WebhookEvent.id.desc())
        )
    assert found is not None
    return int(found)


async def _processed(pipe: Pipeline, event_id: int) -> Counted:
    """Run the event's job as a worker would, counting from its claim to its feed's drain."""
    queue = InProcessQueue(JOBS, pipe.job_ctx(None), concurrency=1)
    with counting(pipe) as counted:
        status = await process_webhook_event(
            {"sync": pipe.ctx, "queue": queue, "job_try": 1, "job_id": "count"}, event_id
        )
        await _drained(pipe)
    assert status == EventStatus.DONE.value, counted.statements
    return counted


async def _drained(pipe: Pipeline) -> None:
    """Wait for the drain the write's commit started."""
    for _ in range(100):
        task = pipe.ctx.feed.drainer._task
        if task is None or task.done():
            return
        await asyncio.sleep(0.01)


def _night(pipe: Pipeline) -> dict[str, Any]:
    sleeps = pipe.sim.sim.world.data(10001).kinds["sleep"].values()
    return max((r.body for r in sleeps if not r.body["nap"]), key=lambda b: str(b["start"]))


def _within(counted: Counted) -> None:
    listing = "\n".join(counted.statements)
    assert len(counted.statements) <= MAX_STATEMENTS, listing
    assert counted.commits <= MAX_COMMITS, f"{counted.commits} commits\n{listing}"


async def test_a_new_nights_sleep_costs_at_most_five_statements(pipe: Pipeline) -> None:
    sleep = _night(pipe)
    counted = await _processed(pipe, await _recorded(pipe, "sleep.updated", sleep["id"]))
    assert pipe.sim.sim.counters.total == 2  # the sleep and one page of cycles
    _within(counted)


async def test_a_recovery_costs_at_most_five_statements(pipe: Pipeline) -> None:
    sleep = _night(pipe)
    await _processed(pipe, await _recorded(pipe, "sleep.updated", sleep["id"]))
    pipe.sim.sim.reset_counters()
    counted = await _processed(pipe, await _recorded(pipe, "recovery.updated", sleep["id"]))
    assert pipe.sim.sim.counters.total == 1  # the recovery by its cycle
    _within(counted)


async def test_a_workout_costs_at_most_five_statements(pipe: Pipeline) -> None:
    workout = pipe.record(10001, "workout")
    counted = await _processed(pipe, await _recorded(pipe, "workout.updated", workout["id"]))
    assert pipe.sim.sim.counters.total == 1
    _within(counted)
