"""Reconciliation audits instead of polling (SPEC §4.2), against the simulator on both backends: an
audit finds the record of a webhook WHOOP lost, counts the miss, suspends webhook confirmation and
widens the next pass to every user; the rotating slice covers every user within AUDIT_DAYS; pending
backfills are finished; one broken connection never stops a pass (40,000 users included)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete, insert, update

from common.db.models import ChannelState, WhoopConnection
from common.db.repositories import ChannelRepository, ConnectionRepository, RecordRepository
from common.db.types import utcnow
from common.sync.jobs import TOKEN_REFRESH_AHEAD, process_webhook_event, refresh_tokens
from common.sync.jobs.backfill import run_backfill
from common.sync.jobs.reconcile import reconcile
from common.sync.reconcile import audit_slice_size, finish_audit, plan_audit
from common.types import DataType
from tests.common.sync.harness import Pipeline

LATER = timedelta(hours=1)  # past the liveness window, and past the backfills' grace


def _misses(data_type: str) -> float:
    value = REGISTRY.get_sample_value("whoopsync_audit_misses_total", {"data_type": data_type})
    return value or 0.0


def _failures(task: str) -> float:
    value = REGISTRY.get_sample_value("whoopsync_reconcile_failures_total", {"task": task})
    return value or 0.0


async def _backfill(pipe: Pipeline, whoop_user_id: int) -> None:
    results = await run_backfill(pipe.ctx, pipe.users[whoop_user_id])
    assert all(r.ok for r in results)


async def _backfill_done(pipe: Pipeline, whoop_user_id: int) -> None:
    """Mark the user's backfill finished without running it."""
    async with pipe.ctx.session_factory() as session:
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == pipe.users[whoop_user_id])
            .values(backfill_pending_since=None)
        )
        await session.commit()


async def _backfill_due(pipe: Pipeline, whoop_user_id: int) -> object:
    async with pipe.ctx.session_factory() as session:
        row = await ConnectionRepository(session).get(pipe.users[whoop_user_id])
    assert row is not None
    return row.backfill_pending_since


async def test_an_audit_finds_a_lost_webhooks_record_and_suspends_confirmation(
    pipe: Pipeline,
) -> None:
    await pipe.connect(10002)
    for whoop_user_id in (10001, 10002):
        await _backfill(pipe, whoop_user_id)
    lost = await pipe.http.post(f"{pipe.sim.base_url}/_sim/webhook-loss", json={"share": 1})
    assert lost.json() == {"share": 1.0}
    [outcome] = pipe.sim.sim.step(10001, "workout")
    assert outcome.action == "workout"
    workout_id = outcome.events[0][1]
    async with asyncio.timeout(10):
        await pipe.sim.sim.webhooks.wait_idle()
    assert pipe.sim.sim.webhooks.log[-1].status == "dropped"
    assert await pipe.event_count() == 0
    before = _misses("workout")
    now = utcnow() + LATER
    async with pipe.ctx.session_factory() as session:  # a whole round is due: both users
        await ChannelRepository(session).move_audit(None, wide=False, at=now - timedelta(days=7))
        await session.commit()

    report = await reconcile(pipe.ctx, now=now)

    assert (report.audited, report.misses, report.failures) == (2, 1, 0)
    assert _misses("workout") == before + 1
    assert _misses("cycle") == 0  # cycles have no webhooks: their changes are no miss
    async with pipe.ctx.session_factory() as session:
        stored = await RecordRepository(session, DataType.WORKOUT).get(uuid.UUID(workout_id))
        channel = await ChannelRepository(session).read()
    assert stored is not None
    assert channel.suspended_until is not None
    assert channel.suspended_until >= now + timedelta(hours=23)
    assert channel.audit_wide is True
    # The next pass audits every user, then the rotation goes back to its slice.
    report = await reconcile(pipe.ctx, now=now)
    assert (report.audited, report.misses) == (2, 0)
    async with pipe.ctx.session_factory() as session:
        assert (await ChannelRepository(session).read()).audit_wide is False


async def test_the_audit_slice_covers_every_user_within_audit_days(pipe: Pipeline) -> None:
    users = [uuid.uuid4() for _ in range(50)]
    await _backfill_done(pipe, 10001)
    async with pipe.ctx.session_factory() as session:
        await session.execute(
            insert(WhoopConnection),
            [_connection_row(u, 500_000 + i) for i, u in enumerate(users)],
        )
        await session.commit()
    # A pass every 6 h, an audit every 2 days: 51 users in 8 passes, about 6.4 a pass.
    settings = pipe.settings.model_copy(
        update={"reconcile_interval_seconds": 6 * 3600, "audit_days": 2}
    )
    assert audit_slice_size(51, 6 * 3600, 2) == 6
    seen: list[uuid.UUID] = []
    start = utcnow()
    try:
        for n in range(1, 9):
            now = start + timedelta(hours=6 * n)
            async with pipe.ctx.session_factory() as session:
                plan = await plan_audit(session, settings, now)
                assert len(plan.users) in (6, 7)
                seen += plan.users
                cursor = plan.users[-1]
                await finish_audit(
                    session, plan, cursor, len(plan.users), stopped=False, misses=0, now=now
                )
                await session.commit()
    finally:
        async with pipe.ctx.session_factory() as session:
            await session.execute(delete(WhoopConnection).where(WhoopConnection.user_id.in_(users)))
            await session.commit()
    assert set(seen) == {*users, pipe.users[10001]}  # everyone within the 2 days
    assert len(seen) <= 52  # and hardly anyone twice


def _connection_row(user_id: uuid.UUID, whoop_user_id: int) -> dict[str, object]:
    now = utcnow()
    return {
        "user_id": user_id,
        "whoop_user_id": whoop_user_id,
        "access_token_enc": "not-a-fernet-token",
        "refresh_token_enc": "not-a-fernet-token",
        "expires_at": now + timedelta(days=1),
        "scopes": "read:sleep offline",
        "status": "active",
        "token_version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def test_a_backfill_that_never_ran_is_finished_by_reconciliation(pipe: Pipeline) -> None:
    # Connected, but the backfill job never ran (the queue was down).
    assert await _backfill_due(pipe, 10001) is not None
    assert await pipe.rows(DataType.SLEEP, 10001) == []
    report = await reconcile(pipe.ctx, now=utcnow() + LATER)
    assert report.backfills == 1
    assert await _backfill_due(pipe, 10001) is None
    for data_type in DataType:
        assert await pipe.rows(data_type, 10001), data_type
    oldest = min(r["start"] for r in await pipe.rows(DataType.CYCLE, 10001))
    assert oldest < (utcnow() - timedelta(days=10)).isoformat()  # the whole backfill, not 3 days


async def test_a_backfill_cut_short_stays_due_until_finished(pipe: Pipeline) -> None:
    faults = await pipe.http.post(
        f"{pipe.sim.base_url}/_sim/faults",
        json={"path": "*/v2/activity/workout", "method": "GET", "status": 500},
    )
    assert faults.status_code < 300, faults.text
    results = await run_backfill(pipe.ctx, pipe.users[10001])
    assert not all(r.ok for r in results)
    assert await _backfill_due(pipe, 10001) is not None
    await pipe.http.delete(f"{pipe.sim.base_url}/_sim/faults")
    report = await reconcile(pipe.ctx, now=utcnow() + LATER)
    assert report.backfills == 1
    assert await _backfill_due(pipe, 10001) is None
    assert await pipe.rows(DataType.WORKOUT, 10001)


async def test_one_broken_connection_never_stops_the_pass(pipe: Pipeline) -> None:
    await pipe.connect(10002)
    async with pipe.ctx.session_factory() as session:
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == pipe.users[10001])
            .values(access_token_enc="not-a-fernet-token")
        )
        await ChannelRepository(session).move_audit(None, wide=True)  # audit everyone now
        await session.commit()
    audits, backfills = _failures("audit"), _failures("backfill")
    report = await reconcile(pipe.ctx, now=utcnow() + LATER)
    # 10001's backfill fails (its token does not decrypt), 10002's backfill and audit succeed.
    assert (report.backfills, report.failures) == (1, 1)
    assert _failures("backfill") == backfills + 1
    for data_type in DataType:
        assert await pipe.rows(data_type, 10002), data_type
    assert await _backfill_due(pipe, 10001) is not None  # still due: the next pass tries again
    # With its backfill out of the way, 10001's audit fails on its own and 10002's goes on.
    await _backfill_done(pipe, 10001)
    async with pipe.ctx.session_factory() as session:
        await ChannelRepository(session).move_audit(None, wide=True)
        await session.commit()
    report = await reconcile(pipe.ctx, now=utcnow() + LATER)
    assert (report.audited, report.failures) == (2, 1)
    assert _failures("audit") == audits + 1


async def test_the_token_pass_goes_on_past_a_connection_it_cannot_decrypt(pipe: Pipeline) -> None:
    await pipe.connect(10002)
    soon = utcnow() + TOKEN_REFRESH_AHEAD / 3
    async with pipe.ctx.session_factory() as session:
        await session.execute(update(WhoopConnection).values(expires_at=soon))
        await session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == pipe.users[10001])
            .values(refresh_token_enc="not-a-fernet-token", access_token_enc="not-either")
        )
        await session.commit()
    assert await refresh_tokens(pipe.job_ctx(None)) == 1
    async with pipe.ctx.session_factory() as session:
        row = await ConnectionRepository(session).get(pipe.users[10002])
    assert row is not None
    assert row.expires_at is not None
    assert row.expires_at > utcnow() + timedelta(minutes=30)


async def test_a_pass_over_40000_connected_users(pipe: Pipeline) -> None:
    users = [uuid.uuid4() for _ in range(40_000)]
    rows = [_connection_row(u, 1_000_000 + i) for i, u in enumerate(users)]
    async with pipe.ctx.session_factory() as session:
        await session.execute(delete(ChannelState))  # the rotation starts here, whatever ran before
        for start in range(0, len(rows), 5000):
            await session.execute(insert(WhoopConnection), rows[start : start + 5000])
        await session.commit()
    try:
        report = await reconcile(pipe.ctx, now=utcnow())
        again = await reconcile(pipe.ctx, now=utcnow() + timedelta(minutes=15))
        async with pipe.ctx.session_factory() as session:
            channel = await ChannelRepository(session).read()
    finally:
        async with pipe.ctx.session_factory() as session:
            for start in range(0, len(users), 5000):
                chunk = users[start : start + 5000]
                await session.execute(
                    delete(WhoopConnection).where(WhoopConnection.user_id.in_(chunk))
                )
            await session.commit()
    slice_size = audit_slice_size(40_001, 900, 7)
    assert slice_size == 59  # 40,001 users in 7 days: 59.5 every 15 minutes
    assert report.audited == slice_size
    assert again.audited in (slice_size, slice_size + 1)
    # Their tokens do not decrypt: each audit fails on its own, counted, and the pass goes on.
    assert report.failures >= slice_size - 1
    assert channel.audit_cursor is not None


async def test_close_events_share_their_fetches(pipe: Pipeline) -> None:
    await _backfill(pipe, 10001)
    pipe.use_queue(None)  # record only: the jobs run below, one after the other
    [outcome] = pipe.sim.sim.step(10001, "new_sleep")
    assert outcome.action == "new_sleep"
    assert [t for t, _ in outcome.events] == ["sleep.updated", "recovery.updated"]
    async with asyncio.timeout(20):
        await pipe.sim.sim.webhooks.wait_idle()
    events = await pipe.events()
    assert sorted(e.event_type for e in events) == ["recovery.updated", "sleep.updated"]
    pipe.sim.sim.reset_counters()
    for event in events:
        assert await process_webhook_event(pipe.job_ctx(None), event.id) == "done"
    # The sleep once, the new night's cycle page once, the recovery once: three calls, not five.
    assert pipe.calls("GET /v2/activity/sleep/{sleepId}") == 1
    assert pipe.calls("GET /v2/cycle") == 1
    assert pipe.calls("GET /v2/cycle/{cycleId}/recovery") == 1
    assert pipe.sim.sim.counters.total == 3
    sleep_id = outcome.events[0][1]
    async with pipe.ctx.session_factory() as session:
        assert await RecordRepository(session, DataType.SLEEP).get(uuid.UUID(sleep_id))
    # A later event for the same sleep is fetched again: what it announces came after.
    sent = await pipe.post(
        {"user_id": 10001, "id": sleep_id, "type": "sleep.updated", "trace_id": "later"}
    )
    assert sent.status_code == 204
    [later] = [e for e in await pipe.events() if e.trace_id == "later"]
    assert await process_webhook_event(pipe.job_ctx(None), later.id) == "done"
    assert pipe.calls("GET /v2/activity/sleep/{sleepId}") == 2
