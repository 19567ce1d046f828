"""What the admin API and the console show (SPEC §3.6), gathered once for both.

Every figure is read from durable rows (the inbox, the pushes, the sync log, the call and incident
tallies) or from the shared WHOOP budget, so every api process answers the same.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from common.budget import budget_usage
from common.config import Settings
from common.db.models import SyncAttempt, SyncLog, WebhookEvent, WhoopConnection
from common.db.repositories import ChannelRepository, ConnectionRepository, SyncLogRepository
from common.db.repositories.admin import AdminRepository
from common.db.repositories.ops import (
    AUDIT_MISS,
    RECONCILE_FAILURE,
    WEBHOOK_REFUSAL,
    OpsRepository,
)
from common.db.types import utcnow
from common.queue import Queue
from common.ratelimit import RateLimiter
from common.sync.backfill import backfill_view
from common.sync.freshness import REFUSAL_HOLD, channel_view
from common.sync.results import ALL_TYPES
from common.types import Trigger
from services.api.admin_schemas import (
    AttemptRow,
    BudgetBlock,
    ChannelBlock,
    ConnectionBlock,
    EventRow,
    InboxBlock,
    Overview,
    PushBlock,
    TypeState,
    UserPage,
)
from services.api.errors import ApiError
from services.api.schemas import BackfillState

DAY = timedelta(days=1)
SYNC_JOB = "sync_type"


def _age(now: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else round(max(0.0, (now - moment).total_seconds()), 1)


async def budget_block(limiter: RateLimiter, session: AsyncSession) -> BudgetBlock:
    """The WHOOP budget as the shared limiter counts it (`common.budget`, which also sets the
    forecast gauges): this minute, this day, the day's forecast and the users it carries."""
    usage = await budget_usage(limiter, session)
    return BudgetBlock(
        **asdict(usage),
        minute_left=max(0, usage.minute_limit - usage.minute_used),
        day_left=max(0, usage.day_limit - usage.day_used),
    )


async def overview(
    session: AsyncSession, settings: Settings, limiter: RateLimiter, now: datetime | None = None
) -> Overview:
    """The overview: channel, budget, inbox, pushes, and the last day's misses and failures."""
    now = now or utcnow()
    ops, admin = OpsRepository(session), AdminRepository(session)
    row = await ChannelRepository(session).read()
    view = channel_view(settings, row, now)
    inbox, pushes = await admin.inbox_counts(), await admin.push_counts()
    return Overview(
        generated_at=now,
        webhook_channel=ChannelBlock(
            live=view.live,
            last_event_at=view.last_event_at,
            suspended=view.suspended,
            refusals_last_hour=await ops.count_since(WEBHOOK_REFUSAL, now - REFUSAL_HOLD),
            last_refused_at=row.last_refused_at,
        ),
        whoop_budget=await budget_block(limiter, session),
        inbox=InboxBlock(
            pending=inbox.pending,
            parked=inbox.parked,
            failed=inbox.failed,
            oldest_pending_at=inbox.oldest_pending_at,
            oldest_pending_age_seconds=_age(now, inbox.oldest_pending_at),
        ),
        pushes=PushBlock(
            pending=pushes.pending,
            failed=pushes.failed,
            oldest_pending_at=pushes.oldest_pending_at,
            oldest_pending_age_seconds=_age(now, pushes.oldest_pending_at),
        ),
        audit_misses_24h=await ops.count_since(AUDIT_MISS, now - DAY),
        reconcile_failures_24h=await ops.count_since(RECONCILE_FAILURE, now - DAY),
    )


async def resolve_user(session: AsyncSession, ref: str) -> uuid.UUID:
    """An app user UUID, or `whoop:N` for the user holding WHOOP account N; 422 when malformed,
    404 when no such WHOOP account is connected."""
    if ref.startswith("whoop:"):
        number = ref.removeprefix("whoop:")
        if not number.isdigit() or len(number) > 18:
            raise ApiError(422, "validation_error", "user_id: whoop:N takes a WHOOP user id")
        user_id = await AdminRepository(session).user_of_whoop(int(number))
        if user_id is None:
            raise ApiError(404, "not_found", f"No connection holds WHOOP user {number}")
        return user_id
    try:
        return uuid.UUID(ref)
    except ValueError:
        raise ApiError(
            422, "validation_error", "user_id: an app user UUID or whoop:N is expected"
        ) from None


def _connection(connection: WhoopConnection) -> ConnectionBlock:
    return ConnectionBlock(
        whoop_user_id=connection.whoop_user_id,
        status=connection.status,
        scopes=sorted(connection.scopes.split()),
        created_at=connection.created_at,
        backfill=BackfillState(**backfill_view(connection)),
    )


def _type_state(row: SyncLog | None) -> TypeState:
    if row is None:
        return TypeState(
            last_sync_at=None,
            last_fetch_at=None,
            last_attempt_at=None,
            sync_status="never_synced",
            records_synced=0,
            error_message=None,
        )
    return TypeState(
        last_sync_at=row.last_sync_at,
        last_fetch_at=row.last_fetch_at,
        last_attempt_at=row.last_attempt_at,
        sync_status=row.sync_status,
        records_synced=row.records_synced,
        error_message=row.error_message,
    )


def _attempt(row: SyncAttempt) -> AttemptRow:
    return AttemptRow(
        data_type=row.data_type,
        trigger=row.trigger,
        outcome=row.outcome,
        records=row.records,
        duration_ms=row.duration_ms,
        error=row.error,
        started_at=row.started_at,
    )


def event_row(row: WebhookEvent) -> EventRow:
    """One recorded event as the operators see it."""
    return EventRow(
        id=row.id,
        trace_id=row.trace_id,
        event_type=row.event_type,
        record_id=row.record_id,
        status=row.status,
        parked=row.parked_at is not None,
        attempts=row.attempts,
        last_error=row.last_error,
        received_at=row.received_at,
        processed_at=row.processed_at,
    )


async def user_page(session: AsyncSession, ref: str, limit: int = 50) -> UserPage:
    """A user's connection, sync state per type, last attempts and webhook events; 404 when the
    user has neither a connection nor any sync history."""
    user_id = await resolve_user(session, ref)
    connection = await ConnectionRepository(session).get(user_id)
    logs = await SyncLogRepository(session).for_user(user_id)
    attempts = await SyncLogRepository(session).history(user_id, limit=limit)
    if connection is None and not logs and not attempts:
        raise ApiError(404, "not_found", f"No WHOOP connection or sync history for user {user_id}")
    events = (
        await AdminRepository(session).user_events(connection.whoop_user_id, limit)
        if connection is not None
        else []
    )
    return UserPage(
        user_id=user_id,
        connection=None if connection is None else _connection(connection),
        sync_state={t.value: _type_state(logs.get(t)) for t in ALL_TYPES},
        attempts=[_attempt(a) for a in attempts],
        events=[event_row(e) for e in events],
    )


async def sync_now(session: AsyncSession, queue: Queue, ref: str) -> tuple[uuid.UUID, list[str]]:
    """Queue a sync of every type of a connected user at background priority (the worker's
    `sync_type` job over the reconciliation window); 404 without a connection."""
    user_id = await resolve_user(session, ref)
    if await ConnectionRepository(session).get(user_id) is None:
        raise ApiError(404, "not_found", f"No WHOOP connection for user {user_id}")
    await session.rollback()  # a read only: end it before the queue is asked
    types = [t.value for t in ALL_TYPES]
    for data_type in types:
        await queue.enqueue(SYNC_JOB, str(user_id), data_type, Trigger.ADMIN.value)
    return user_id, types
