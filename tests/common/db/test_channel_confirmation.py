"""What confirms a type (SPEC §4.1), in the read's one statement, on both backends: a live webhook
channel confirms sleep, recovery and workout at the newest receipt; a quiet channel, a refusal in
the last hour, a suspension, a user's open event, a failed sync, a pending backfill, a connection
that is not active and cycles leave the threshold to rule alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.config import Settings
from common.db.models import ChannelState, WebhookEvent, WhoopConnection
from common.db.repositories import (
    Attempt,
    ChannelRepository,
    ConnectionRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.db.repositories.read_state import CachedRead, ReadStateRepository, Window
from common.sync.freshness import channel_view, live_rule
from common.types import ConnectionStatus, DataType, EventStatus, SyncStatus, Trigger
from tests.common.db import samples

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
THRESHOLD = timedelta(hours=2)
WEBHOOKS = Settings(freshness="webhooks", webhook_liveness_seconds=900)
THRESHOLD_ONLY = Settings(freshness="threshold")


async def _world(session: AsyncSession) -> tuple[uuid.UUID, int]:
    """A connected user whose sleeps and cycles were synced 3 h before NOW (past the threshold),
    and an inbox with no other event than the ones a test adds."""
    await session.execute(delete(WebhookEvent))
    await session.execute(delete(ChannelState))
    user = uuid.uuid4()
    whoop_user = int(user.int % 2_000_000_000)
    await ConnectionRepository(session).save(
        user_id=user,
        whoop_user_id=whoop_user,
        access_token_enc="a",
        refresh_token_enc="r",
        expires_at=NOW + timedelta(days=1),
        scopes="read:sleep offline",
    )
    await session.execute(
        update(WhoopConnection)
        .where(WhoopConnection.user_id == user)
        .values(backfill_pending_since=None)
    )
    synced = NOW - timedelta(hours=3)
    sleep = samples.sleep(start=NOW - timedelta(days=1), cycle_id=7, whoop_user_id=whoop_user)
    cycle = samples.cycle(cycle_id=7, start=NOW - timedelta(days=1), whoop_user_id=whoop_user)
    await RecordRepository(session, DataType.SLEEP).upsert(user, [sleep])
    await RecordRepository(session, DataType.CYCLE).upsert(user, [cycle])
    for data_type in (DataType.SLEEP, DataType.CYCLE):
        await SyncLogRepository(session).record(
            Attempt(user, data_type, Trigger.READ, SyncStatus.SUCCESS, 1, synced, 5)
        )
    await session.flush()
    return user, whoop_user


async def _event(
    session: AsyncSession,
    whoop_user: int,
    received_at: datetime,
    status: EventStatus = EventStatus.DONE,
) -> None:
    session.add(
        WebhookEvent(
            trace_id=str(uuid.uuid4()),
            event_type="sleep.updated",
            whoop_user_id=whoop_user,
            record_id=str(uuid.uuid4()),
            payload="{}",
            status=status.value,
            attempts=0,
            received_at=received_at,
        )
    )
    await session.flush()


async def _read(
    session: AsyncSession,
    user: uuid.UUID,
    data_type: DataType = DataType.SLEEP,
    settings: Settings = WEBHOOKS,
) -> CachedRead:
    repo = ReadStateRepository(await session.connection())
    rule = live_rule(settings, data_type, NOW)
    found = await repo.read(user, data_type, Window(30), NOW - THRESHOLD, rule)
    assert found is not None
    return found


async def test_a_live_channel_confirms_a_read_past_the_threshold(any_session: AsyncSession) -> None:
    user, _ = await _world(any_session)
    other = 424242  # any verified event keeps the channel live, whoever it was for
    await _event(any_session, other, NOW - timedelta(minutes=3))
    found = await _read(any_session, user)
    assert found.records is not None
    assert len(found.records) == 1
    assert found.state.confirmed_by == "webhooks"
    assert found.state.last_sync_at == NOW - timedelta(minutes=3)
    view = channel_view(WEBHOOKS, await ChannelRepository(any_session).read(), NOW)
    assert view.live is True
    assert view.last_event_at == NOW - timedelta(minutes=3)


async def test_a_quiet_channel_leaves_the_threshold_to_rule(any_session: AsyncSession) -> None:
    user, whoop_user = await _world(any_session)
    await _event(any_session, whoop_user, NOW - timedelta(minutes=16))  # liveness is 15 min
    found = await _read(any_session, user)
    assert found.records is None
    assert found.state.confirmed_by == "sync"
    assert found.state.last_sync_at == NOW - timedelta(hours=3)
    view = channel_view(WEBHOOKS, await ChannelRepository(any_session).read(), NOW)
    assert view.live is False


async def test_a_refusal_in_the_last_hour_stops_confirmation(any_session: AsyncSession) -> None:
    user, whoop_user = await _world(any_session)
    await _event(any_session, whoop_user, NOW - timedelta(minutes=1))
    await ChannelRepository(any_session).note_refusal(NOW - timedelta(minutes=59))
    assert (await _read(any_session, user)).records is None
    await any_session.execute(
        update(ChannelState).values(last_refused_at=NOW - timedelta(minutes=61))
    )
    assert (await _read(any_session, user)).state.confirmed_by == "webhooks"


async def test_a_suspended_channel_confirms_nothing(any_session: AsyncSession) -> None:
    user, whoop_user = await _world(any_session)
    await _event(any_session, whoop_user, NOW - timedelta(minutes=1))
    await ChannelRepository(any_session).suspend(NOW + timedelta(hours=23))
    assert (await _read(any_session, user)).records is None
    assert channel_view(WEBHOOKS, await ChannelRepository(any_session).read(), NOW).live is False


async def test_a_pending_event_of_the_user_holds_confirmation_back(
    any_session: AsyncSession,
) -> None:
    user, whoop_user = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    await _event(any_session, whoop_user, NOW - timedelta(hours=5), EventStatus.PENDING)
    assert (await _read(any_session, user)).records is None


async def test_a_failed_event_holds_back_until_it_is_processed(any_session: AsyncSession) -> None:
    user, whoop_user = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    await _event(any_session, whoop_user, NOW - timedelta(hours=1), EventStatus.FAILED)
    assert (await _read(any_session, user)).records is None
    # A later fetch of another record of the type does not cover what the event announced.
    await SyncLogRepository(any_session).record(
        Attempt(
            user,
            DataType.SLEEP,
            Trigger.WEBHOOK,
            SyncStatus.SUCCESS,
            1,
            NOW - timedelta(minutes=30),
            5,
            confirms=False,
        )
    )
    await any_session.flush()
    assert (await _read(any_session, user)).records is None
    # The event itself processed (a replay): the user is confirmed again.
    await any_session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.whoop_user_id == whoop_user)
        .values(status=EventStatus.DONE.value)
    )
    assert (await _read(any_session, user)).state.confirmed_by == "webhooks"


@pytest.mark.parametrize(
    "status", [ConnectionStatus.REAUTHORIZATION_REQUIRED, ConnectionStatus.REVOKED]
)
async def test_a_connection_not_active_is_never_confirmed_by_the_channel(
    any_session: AsyncSession, status: ConnectionStatus
) -> None:
    user, _ = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))  # the channel is live
    assert (await _read(any_session, user)).state.confirmed_by == "webhooks"
    await ConnectionRepository(any_session).set_status(user, status)
    found = await _read(any_session, user)
    assert found.records is None
    assert found.state.confirmed_by == "sync"
    assert found.state.last_sync_at == NOW - timedelta(hours=3)
    assert found.state.connection_status is status


async def test_a_failed_sync_of_the_type_holds_confirmation_back(
    any_session: AsyncSession,
) -> None:
    user, _ = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    await SyncLogRepository(any_session).record(
        Attempt(
            user,
            DataType.SLEEP,
            Trigger.READ,
            SyncStatus.FAILED,
            0,
            NOW - timedelta(hours=1),
            5,
            "WHOOP API returned 503",
        )
    )
    await any_session.flush()
    found = await _read(any_session, user)
    assert found.records is None
    assert found.state.last_sync_at == NOW - timedelta(hours=3)


async def test_a_pending_backfill_holds_confirmation_back(any_session: AsyncSession) -> None:
    user, _ = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    await any_session.execute(
        update(WhoopConnection)
        .where(WhoopConnection.user_id == user)
        .values(backfill_pending_since=NOW - timedelta(hours=4))
    )
    assert (await _read(any_session, user)).records is None


async def test_cycles_are_confirmed_only_by_syncs(any_session: AsyncSession) -> None:
    user, _ = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    found = await _read(any_session, user, DataType.CYCLE)
    assert found.records is None
    assert found.state.confirmed_by == "sync"


async def test_threshold_mode_is_the_guides_rule_alone(any_session: AsyncSession) -> None:
    user, _ = await _world(any_session)
    await _event(any_session, 424242, NOW - timedelta(minutes=1))
    found = await _read(any_session, user, settings=THRESHOLD_ONLY)
    assert found.records is None
    assert found.state.confirmed_by == "sync"
    assert (
        channel_view(THRESHOLD_ONLY, await ChannelRepository(any_session).read(), NOW).live is False
    )
