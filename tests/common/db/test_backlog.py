"""The backlog an operator's dashboard shows: events pending, parked and failed with the oldest
pending one's age, and pushes pending and failed, counted on both backends into their gauges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import AppDelivery, Change, WebhookEvent
from common.db.repositories.backlog import BacklogRepository
from common.sync.backlog import export

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(status: str, received_at: datetime, *, parked: bool = False) -> WebhookEvent:
    return WebhookEvent(
        trace_id=str(uuid.uuid4()),
        event_type="sleep.updated",
        whoop_user_id=7,
        record_id=str(uuid.uuid4()),
        payload="{}",
        status=status,
        attempts=0,
        received_at=received_at,
        parked_at=received_at if parked else None,
    )


async def _pushes(session: AsyncSession, statuses: list[str]) -> None:
    user = uuid.uuid4()
    for n, status in enumerate(statuses):
        created = NOW - timedelta(minutes=10 * (len(statuses) - n))
        change = Change(
            user_id=user,
            whoop_user_id=7,
            data_type="sleep",
            action="upserted",
            record_id=str(uuid.uuid4()),
            changed_at=created,
        )
        session.add(change)
        await session.flush()
        session.add(
            AppDelivery(change_seq=change.seq, user_id=user, status=status, created_at=created)
        )
    await session.flush()


async def test_counts_each_state_and_the_oldest_waiting(any_session: AsyncSession) -> None:
    await any_session.execute(delete(WebhookEvent))
    await any_session.execute(delete(AppDelivery))
    oldest = NOW - timedelta(minutes=7)
    any_session.add_all(
        [
            _event("pending", oldest),
            _event("pending", NOW - timedelta(minutes=1)),
            _event("pending", NOW - timedelta(hours=3), parked=True),
            _event("failed", NOW - timedelta(hours=5)),
            _event("done", NOW - timedelta(hours=6)),
        ]
    )
    await _pushes(any_session, ["delivered", "failed", "pending", "pending"])

    backlog = await BacklogRepository(any_session).snapshot()

    assert (backlog.events_pending, backlog.events_parked, backlog.events_failed) == (2, 1, 1)
    assert backlog.oldest_pending_at == oldest  # the parked one waits for reconciliation instead
    assert (backlog.pushes_pending, backlog.pushes_failed) == (2, 1)
    assert backlog.oldest_push_at == NOW - timedelta(minutes=20)


async def test_empty_queues_export_zero_ages(any_session: AsyncSession) -> None:
    await any_session.execute(delete(WebhookEvent))
    await any_session.execute(delete(AppDelivery))

    backlog = await BacklogRepository(any_session).snapshot()
    export(backlog, NOW)

    assert backlog.oldest_pending_at is None
    assert REGISTRY.get_sample_value("whoopsync_inbox_events", {"state": "pending"}) == 0
    assert REGISTRY.get_sample_value("whoopsync_inbox_oldest_pending_seconds") == 0
    assert REGISTRY.get_sample_value("whoopsync_app_pushes", {"state": "failed"}) == 0


async def test_exports_the_oldest_pending_age(any_session: AsyncSession) -> None:
    await any_session.execute(delete(WebhookEvent))
    await any_session.execute(delete(AppDelivery))
    any_session.add(_event("pending", NOW - timedelta(seconds=90)))
    await _pushes(any_session, ["pending"])

    export(await BacklogRepository(any_session).snapshot(), NOW)

    assert REGISTRY.get_sample_value("whoopsync_inbox_oldest_pending_seconds") == 90
    assert REGISTRY.get_sample_value("whoopsync_app_pushes", {"state": "pending"}) == 1
    assert REGISTRY.get_sample_value("whoopsync_app_push_oldest_pending_seconds") == 600
