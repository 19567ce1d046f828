"""The webhook channel's shared state (SPEC §4.1, §4.2), read and written by every process.

The newest receipt is the inbox's newest `received_at` (one backward step on its index); the
refusals, the suspension after an audit miss, and the audit's rotating place live in one row
(`whoop_channel_state`, id 1), created on first write.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import ChannelState, WebhookEvent, WhoopConnection
from common.db.repositories.base import dialect_insert
from common.db.types import utcnow
from common.types import ConnectionStatus, EventStatus, SyncStatus

ROW_ID = 1
OPEN_STATUSES = (EventStatus.PENDING.value, EventStatus.FAILED.value)


@dataclass(frozen=True)
class ChannelRow:
    """What the channel's shared state says, as read."""

    last_event_at: datetime | None
    last_refused_at: datetime | None
    suspended_until: datetime | None
    audit_cursor: uuid.UUID | None
    audit_wide: bool
    audit_at: datetime | None = None


@dataclass(frozen=True)
class OpenEvent:
    """A user's event not yet done: pending, or failed."""

    status: str
    received_at: datetime


@dataclass(frozen=True)
class LiveRule:
    """The moments the channel rule compares against: live after, refusals before, now."""

    live_after: datetime
    refused_before: datetime
    now: datetime


def user_held_back(
    open_events: Sequence[OpenEvent],
    sync_status: str | None,
    backfill_pending: bool,
    connection_status: str = ConnectionStatus.ACTIVE.value,
) -> bool:
    """True when this user's type is not confirmed by the channel, live as it may be.

    A connection that is not active gets no webhooks (WHOOP refuses its tokens, or it was
    revoked); an event pending or failed holds the user back until that event itself is
    processed, whatever else was fetched meanwhile (it may announce a version still missing).
    """
    if connection_status != ConnectionStatus.ACTIVE.value:
        return True
    if backfill_pending or sync_status != SyncStatus.SUCCESS.value:
        return True
    return bool(open_events)


_STATE = select(
    select(func.max(WebhookEvent.received_at)).scalar_subquery(),
    ChannelState.last_refused_at,
    ChannelState.suspended_until,
    ChannelState.audit_cursor,
    ChannelState.audit_wide,
    ChannelState.audit_at,
).select_from(ChannelState)
_NEWEST = select(func.max(WebhookEvent.received_at))


class ChannelRepository:
    """All SQL of the channel state, over a session (the caller commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self) -> ChannelRow:
        """The channel's state; an absent row reads as nothing refused, nothing suspended."""
        row = (await self.session.execute(_STATE.where(ChannelState.id == ROW_ID))).first()
        if row is None:
            newest = await self.session.scalar(_NEWEST)
            return ChannelRow(newest, None, None, None, False)
        return ChannelRow(row[0], row[1], row[2], row[3], bool(row[4]), row[5])

    async def _set(self, **values: object) -> None:
        table = ChannelState.__table__
        now = utcnow()
        stmt = dialect_insert(self.session, table).values(
            {"id": ROW_ID, "audit_wide": False, "updated_at": now, **values}
        )
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": now})
        )

    async def note_refusal(self, at: datetime) -> None:
        """Note that the receiver refused (503) an event at `at` (a later refusal wins)."""
        table = ChannelState.__table__
        current = await self.session.scalar(
            select(table.c.last_refused_at).where(table.c.id == ROW_ID)
        )
        if current is None or current < at:
            await self._set(last_refused_at=at)

    async def suspend(self, until: datetime) -> None:
        """Suspend webhook confirmation until then, and widen the next audits to every user."""
        await self._set(suspended_until=until, audit_wide=True)

    async def move_audit(
        self, cursor: uuid.UUID | None, *, wide: bool, at: datetime | None = None
    ) -> None:
        """Where the rotating audit carries on next, whether it still covers everyone, and (with
        `at`) how far in time the rotation has come."""
        values: dict[str, object] = {"audit_cursor": cursor, "audit_wide": wide}
        if at is not None:
            values["audit_at"] = at
        await self._set(**values)

    async def open_events(self, whoop_user_id: int) -> list[OpenEvent]:
        """The user's events still pending or failed."""
        rows = await self.session.execute(
            select(WebhookEvent.status, WebhookEvent.received_at).where(
                WebhookEvent.whoop_user_id == whoop_user_id,
                WebhookEvent.status.in_(OPEN_STATUSES),
            )
        )
        return [OpenEvent(status, received) for status, received in rows.all()]

    async def audit_slice(self, after: uuid.UUID | None, limit: int | None) -> Sequence[uuid.UUID]:
        """Active users whose backfill is done, in user-id order after `after` (all from the start
        when None); a user still backfilling is audited once the backfill is done."""
        table = WhoopConnection.__table__
        stmt = select(table.c.user_id).where(
            table.c.status == ConnectionStatus.ACTIVE.value,
            table.c.backfill_pending_since.is_(None),
        )
        if after is not None:
            stmt = stmt.where(table.c.user_id > after)
        stmt = stmt.order_by(table.c.user_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def active_count(self) -> int:
        """How many connections are active."""
        table = WhoopConnection.__table__
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.status == ConnectionStatus.ACTIVE.value)
            )
            or 0
        )

    async def pending_backfills(self, before: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Active users whose backfill was due before `before` and has not finished."""
        table = WhoopConnection.__table__
        stmt = (
            select(table.c.user_id)
            .where(
                table.c.status == ConnectionStatus.ACTIVE.value,
                table.c.backfill_pending_since < before,
            )
            .order_by(table.c.backfill_pending_since)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def finish_backfill(self, user_id: uuid.UUID, due_since: datetime | None) -> None:
        """Clear a finished backfill (unless a newer one became due meanwhile)."""
        stmt = update(WhoopConnection).where(WhoopConnection.user_id == user_id)
        if due_since is not None:
            stmt = stmt.where(WhoopConnection.backfill_pending_since <= due_since)
        await self.session.execute(stmt.values(backfill_pending_since=None))
