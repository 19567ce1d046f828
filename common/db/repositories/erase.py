"""The SQL of an erase (SPEC §3.5): every copy of one user's WHOOP data, in the caller's
transaction, counted by kind.

What stays: the webhook events as anonymous dedup keys (their `trace_id`, type and times; no
payload, no WHOOP user, no record id), and whatever the caller adds after (the `user.erased`
change). Tombstones go too: with the connection gone nothing can be written for the user any
more (the ownership rule of SPEC §4), and a later link of the account backfills afresh.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import (
    AppDelivery,
    AppDeliveryAttempt,
    Change,
    ChangeOutbox,
    ChannelState,
    OAuthState,
    SyncAttempt,
    SyncLog,
    WebhookEvent,
    WhoopConnection,
)
from common.db.repositories.record_kinds import KINDS
from common.types import DataType


class EraseRepository:
    """Deletes one user's WHOOP data; each method returns how many rows it removed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _count(self, stmt: Any) -> int:
        return int((await self.session.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def records(self, data_type: DataType, user_id: uuid.UUID, whoop_user_id: int) -> int:
        """The user's records of one type, and any of the account's under another user id."""
        table = KINDS[data_type].table
        return await self._count(
            delete(table).where(
                or_(table.c.user_id == user_id, table.c.whoop_user_id == whoop_user_id)
            )
        )

    async def tombstones(self, user_id: uuid.UUID) -> int:
        """The user's tombstones, all four types."""
        removed = 0
        for kind in KINDS.values():
            removed += await self._count(
                delete(kind.tombstones).where(kind.tombstones.c.user_id == user_id)
            )
        return removed

    async def sync_state(self, user_id: uuid.UUID) -> tuple[int, int]:
        """The sync log rows and the attempts of the user."""
        states = await self._count(delete(SyncLog).where(SyncLog.user_id == user_id))
        attempts = await self._count(delete(SyncAttempt).where(SyncAttempt.user_id == user_id))
        return states, attempts

    async def webhook_payloads(self, whoop_user_id: int) -> int:
        """Empty the account's webhook events down to anonymous dedup keys."""
        return await self._count(
            update(WebhookEvent)
            .where(WebhookEvent.whoop_user_id == whoop_user_id)
            .values(payload="", whoop_user_id=0, record_id="", last_error=None)
        )

    async def feed(self, user_id: uuid.UUID) -> tuple[int, int, int]:
        """The user's changes (numbered and not yet), their pushes not yet delivered, and the
        record of pushes already sent: (changes, pending pushes, pushes sent or given up)."""
        seqs = select(AppDelivery.change_seq).where(AppDelivery.user_id == user_id)
        await self.session.execute(
            delete(AppDeliveryAttempt).where(AppDeliveryAttempt.change_seq.in_(seqs))
        )
        pending = await self._count(
            delete(AppDelivery).where(
                AppDelivery.user_id == user_id, AppDelivery.status == "pending"
            )
        )
        sent = await self._count(delete(AppDelivery).where(AppDelivery.user_id == user_id))
        changes = await self._count(delete(Change).where(Change.user_id == user_id))
        changes += await self._count(delete(ChangeOutbox).where(ChangeOutbox.user_id == user_id))
        return changes, pending, sent

    async def connection(self, user_id: uuid.UUID) -> tuple[int, int]:
        """The connection row and the connect flow's states of the user; the audit's place in
        the rotation moves to the user before (it is kept as a user id)."""
        before = (
            select(WhoopConnection.user_id)
            .where(WhoopConnection.user_id < user_id)
            .order_by(WhoopConnection.user_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        await self.session.execute(
            update(ChannelState)
            .where(ChannelState.audit_cursor == user_id)
            .values(audit_cursor=before)
        )
        connections = await self._count(
            delete(WhoopConnection).where(WhoopConnection.user_id == user_id)
        )
        states = await self._count(delete(OAuthState).where(OAuthState.user_id == user_id))
        return connections, states
