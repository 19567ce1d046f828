"""The worker's crons: arq's wall-clock schedule for each interval, the six crons with their
intervals from the settings (the change feed's prune is a rule of the retention cron), and the
proactive token refresh against the simulator."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from arq.cron import next_cron

from common.db.models import WhoopConnection
from common.db.repositories import ConnectionRepository
from common.db.types import utcnow
from common.feed.jobs import drain_changes, push_due
from common.ratelimit import Priority
from common.sync.backlog import count_backlog
from common.sync.jobs import (
    TOKEN_REFRESH_AHEAD,
    prune_retention,
    reconcile_users,
    refresh_tokens,
    sweep_inbox,
)
from common.types import ConnectionStatus, DataType, Trigger
from common.whoop.errors import WhoopReauthorizationRequired
from services.worker.crons import cron_jobs, schedule
from services.worker.health import HEALTH_CHECK_INTERVAL
from services.worker.settings import create_worker
from tests.common.sync.harness import Pipeline, make_settings

EVERY_SECOND = set(range(60))


@pytest.mark.parametrize(
    ("seconds", "fields"),
    [
        (1, {"second": EVERY_SECOND}),
        (60, {"minute": set(range(60)), "second": 0}),
        (900, {"minute": {0, 15, 30, 45}, "second": 0}),
        (3600, {"hour": set(range(24)), "minute": 0, "second": 0}),
        (45, {"second": {0, 30}}),  # not a divisor of the minute: the next one down
        (7 * 3600, {"hour": {0, 6, 12, 18}, "minute": 0, "second": 0}),
    ],
)
def test_schedule_maps_an_interval_to_arqs_clock_fields(
    seconds: int, fields: dict[str, object]
) -> None:
    assert schedule(seconds) == fields


def _gaps(seconds: int, runs: int = 6) -> set[float]:
    """The spacing of arq's successive runs of `schedule(seconds)` from an odd moment."""
    moment = datetime(2026, 3, 1, 10, 7, 13, tzinfo=UTC)
    times = []
    for _ in range(runs):
        moment = next_cron(moment, **schedule(seconds))
        times.append(moment)
    return {(b - a).total_seconds() for a, b in itertools.pairwise(times)}


@pytest.mark.parametrize(
    ("seconds", "gap"), [(1, 1), (60, 60), (300, 300), (900, 900), (3600, 3600), (45, 30)]
)
def test_arq_runs_the_schedule_evenly_at_its_interval(seconds: int, gap: int) -> None:
    assert _gaps(seconds) == {gap}


def test_cron_jobs_are_the_seven_crons_at_the_default_intervals() -> None:
    defaults = make_settings("sqlite+aiosqlite:///x.db", None, "http://x", inbox_sweep_seconds=60)
    crons = {job.name: job for job in cron_jobs(defaults)}
    assert {name: job.coroutine for name, job in crons.items()} == {
        "sweep_inbox": sweep_inbox,
        "reconcile": reconcile_users,
        "refresh_tokens": refresh_tokens,
        "retention": prune_retention,
        "drain_changes": drain_changes,
        "push_due": push_due,
        "count_backlog": count_backlog,
    }
    # Every 5 s: what the queue refused goes at once; lost jobs after INBOX_SWEEP_SECONDS.
    assert crons["sweep_inbox"].second == set(range(0, 60, 5))
    assert crons["reconcile"].minute == {0, 15, 30, 45}  # RECONCILE_INTERVAL_SECONDS=900
    assert crons["refresh_tokens"].minute == set(range(0, 60, 5))
    assert (crons["retention"].hour, crons["retention"].minute) == (set(range(24)), 0)
    assert crons["drain_changes"].second == set(range(0, 60, 5))
    assert crons["push_due"].second == set(range(0, 60, 10))
    assert crons["count_backlog"].second == set(range(0, 60, 15))
    # One run per tick across all workers, but every worker counts the backlog for its own gauges.
    assert [name for name, job in crons.items() if not job.unique] == ["count_backlog"]


def test_cron_intervals_follow_the_settings() -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///x.db",
        None,
        "http://x",
        inbox_sweep_seconds=1,
        reconcile_interval_seconds=3600,
    )
    crons = {job.name: job for job in cron_jobs(settings)}
    assert crons["sweep_inbox"].second == EVERY_SECOND
    assert (crons["reconcile"].hour, crons["reconcile"].minute) == (set(range(24)), 0)


async def test_the_worker_carries_the_crons_and_writes_its_health_key_often() -> None:
    settings = make_settings("sqlite+aiosqlite:///x.db", "redis://127.0.0.1:6379/10", "http://x")
    worker = create_worker(settings, handle_signals=False)  # inside the loop: arq takes it here
    assert {"sweep_inbox", "reconcile", "refresh_tokens", "retention"} <= set(worker.functions)
    assert worker.health_check_interval == HEALTH_CHECK_INTERVAL == 10


async def _connection(pipe: Pipeline, whoop_user_id: int) -> WhoopConnection:
    async with pipe.ctx.session_factory() as session:
        row = await ConnectionRepository(session).get(pipe.users[whoop_user_id])
    assert row is not None
    return row


async def _expire_soon(pipe: Pipeline, whoop_user_id: int) -> WhoopConnection:
    """Make the stored access token expire within the cron's look-ahead."""
    row = await _connection(pipe, whoop_user_id)
    async with pipe.ctx.session_factory() as session:
        assert await ConnectionRepository(session).store_tokens(
            row.user_id,
            expected_version=row.token_version,
            access_token_enc=row.access_token_enc or "",
            refresh_token_enc=row.refresh_token_enc,
            expires_at=utcnow() + TOKEN_REFRESH_AHEAD / 3,
        )
        await session.commit()
    return await _connection(pipe, whoop_user_id)


async def test_a_connection_expiring_soon_is_refreshed_and_its_new_token_works(
    pipe: Pipeline,
) -> None:
    before = await _expire_soon(pipe, 10001)
    untouched = await _connection(pipe, 10002)  # expires in an hour: not due
    assert await refresh_tokens(pipe.job_ctx(None)) == 1
    after = await _connection(pipe, 10001)
    assert after.token_version == before.token_version + 1
    assert after.expires_at is not None
    assert after.expires_at > utcnow() + timedelta(minutes=30)
    assert (await _connection(pipe, 10002)).token_version == untouched.token_version
    old_refresh = pipe.ctx.cipher.decrypt(before.refresh_token_enc or "")
    new_refresh = pipe.ctx.cipher.decrypt(after.refresh_token_enc or "")
    assert new_refresh != old_refresh
    with pytest.raises(WhoopReauthorizationRequired):  # WHOOP rotated it: the old one is dead
        await pipe.ctx.oauth.refresh(old_refresh)
    # The stored access token reads data, and the stored refresh token is the live one.
    async with pipe.ctx.session_factory() as session:
        result = await pipe.ctx.service(session).sync_collection(
            pipe.users[10001],
            DataType.CYCLE,
            trigger=Trigger.READ,
            limit=1,
            priority=Priority.INTERACTIVE,
        )
        await session.commit()
    assert result.ok
    assert (await pipe.ctx.oauth.refresh(new_refresh)).access_token


async def test_a_refused_refresh_marks_reauthorization_and_the_others_go_on(
    pipe: Pipeline,
) -> None:
    await _expire_soon(pipe, 10001)
    second = await _expire_soon(pipe, 10002)
    revoked = await pipe.http.post(f"{pipe.sim.base_url}/_sim/users/10001/revoke-refresh-token")
    assert revoked.status_code == 200
    assert await refresh_tokens(pipe.job_ctx(None)) == 1
    assert (
        await _connection(pipe, 10001)
    ).status == ConnectionStatus.REAUTHORIZATION_REQUIRED.value
    assert (await _connection(pipe, 10002)).token_version == second.token_version + 1
