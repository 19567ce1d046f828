"""All SQL of WHOOP connections (the connect flow's single-use states are `oauth_states`')."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import WhoopConnection
from common.db.repositories.base import dialect_insert
from common.db.repositories.event_cache import (
    EventConnection,
    event_connection,
    event_connection_columns,
)
from common.db.types import utcnow
from common.types import ConnectionStatus

# A link starts a fresh backfill (SPEC 3.2): its progress starts over.
BACKFILL_RESET: dict[str, Any] = {
    "backfill_status": "pending",
    "backfill_days": 0,
    "backfill_started_at": None,
    "backfill_finished_at": None,
    "backfill_error": None,
    "backfill_progress": None,
}
# Where a transaction keeps the holders it has locked (see `ConnectionRepository.hold`).
_HELD = "connections.held"


@dataclass(frozen=True)
class Holder:
    """The app user holding a WHOOP account, as locked by the write in progress."""

    user_id: uuid.UUID
    whoop_user_id: int


def first_token_version() -> int:
    """The token version of a connection row inserted now: the clock in microseconds, which
    grows far faster than any row's refreshes (+1 each) can."""
    return int(utcnow().timestamp() * 1_000_000)


_HOLDS: dict[tuple[bool, bool, bool], Any] = {}


def _hold_statement(postgres: bool, by_user: bool, exclusive: bool) -> Any:
    """The row lock of a connection found by `:who` (its app user, else its WHOOP account),
    built once per kind: FOR SHARE or FOR NO KEY UPDATE on PostgreSQL; on SQLite, whose writer is
    single, a no-op update that takes the write lock."""
    key = (postgres, by_user, exclusive)
    if key not in _HOLDS:
        table: Any = WhoopConnection.__table__
        column = table.c.user_id if by_user else table.c.whoop_user_id
        where = column == bindparam("who")
        if postgres:
            _HOLDS[key] = (
                select(table.c.user_id, table.c.whoop_user_id)
                .where(where)
                .with_for_update(read=not exclusive, key_share=exclusive)
            )
        else:
            _HOLDS[key] = (
                update(table)
                .where(where)
                .values(updated_at=table.c.updated_at)
                .returning(table.c.user_id, table.c.whoop_user_id)
            )
    return _HOLDS[key]


class ConnectionRepository:
    """Reads and writes of `whoop_connection`; token values arrive here already encrypted."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> WhoopConnection | None:
        """The connection of an app user (row-locked on PostgreSQL when `for_update`)."""
        stmt = select(WhoopConnection).where(WhoopConnection.user_id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        stmt = stmt.execution_options(populate_existing=True)
        return await self.session.scalar(stmt)

    async def for_event(self, whoop_user_id: int) -> EventConnection | None:
        """The connection an event of this WHOOP user is handled for, or None (unknown user)."""
        row = (await self.session.execute(select(*event_connection_columns(whoop_user_id)))).one()
        return event_connection(tuple(row))

    async def by_whoop_user(self, whoop_user_id: int) -> WhoopConnection | None:
        """The connection of a WHOOP user id, or None for an unknown user."""
        return await self.session.scalar(
            select(WhoopConnection)
            .where(WhoopConnection.whoop_user_id == whoop_user_id)
            .execution_options(populate_existing=True)
        )

    async def hold(
        self,
        *,
        whoop_user_id: int | None = None,
        user_id: uuid.UUID | None = None,
        exclusive: bool = False,
    ) -> Holder | None:
        """The connection of a WHOOP account (or of an app user), locked until the transaction
        ends, or None when there is none: who owns what this transaction writes (SPEC §4).

        PostgreSQL takes a share lock on the row: a move, a switch or an erase (which update or
        delete it) waits for this write to commit, and one that committed first is seen. A share
        lock that waited on a row a move deleted finds nothing, so the lookup runs once more with
        a fresh snapshot (the row the move inserted). SQLite takes its write lock here (a no-op
        update), so no other writer commits between this lookup and the writes that follow.
        Remembered per transaction: a second call costs nothing. A write that deletes holds the
        row `exclusive`ly (PostgreSQL: FOR NO KEY UPDATE), so that a delete and an upsert of one
        account take turns and the later one's statements see what the first committed: a
        tombstone and a concurrent upsert of the same record never both win.
        """
        if (whoop_user_id is None) == (user_id is None):
            raise ValueError("hold() takes a whoop_user_id or a user_id")
        key: object = ("w", whoop_user_id) if user_id is None else ("u", user_id)
        transaction = self.session.sync_session.get_transaction()
        cached = self.session.info.get(_HELD)
        memo: dict[object, Holder | None] = {}
        if transaction is not None and cached is not None and cached[0] is transaction:
            memo = cached[1]
        if key not in memo or exclusive:
            holder = await self._lock_holder(whoop_user_id, user_id, exclusive)
            if holder is None and self._postgres:
                holder = await self._lock_holder(whoop_user_id, user_id, exclusive)
            # The lock's statement began the transaction if none was open: remember it there.
            self.session.info[_HELD] = (self.session.sync_session.get_transaction(), memo)
            memo[key] = holder
            if holder is not None:
                memo[("w", holder.whoop_user_id)] = memo[("u", holder.user_id)] = holder
        return memo[key]

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def _lock_holder(
        self, whoop_user_id: int | None, user_id: uuid.UUID | None, exclusive: bool
    ) -> Holder | None:
        by_user = user_id is not None
        stmt = _hold_statement(self._postgres, by_user, exclusive)
        connection = await self.session.connection()
        row = (
            await connection.execute(stmt, {"who": user_id if by_user else whoop_user_id})
        ).first()
        return None if row is None else Holder(row[0], int(row[1]))

    def forget_held(self) -> None:
        """Drop what `hold` remembered (the transaction changed who holds what)."""
        self.session.info.pop(_HELD, None)

    async def claim(self, whoop_user_id: int) -> None:
        """Start the transaction with a write on the account's connection: PostgreSQL locks its
        row, SQLite takes the write lock now (waiting its busy timeout), so no other writer can
        make this transaction's later writes fail or act on what it is about to read."""
        await self.session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.whoop_user_id == whoop_user_id)
            .values(updated_at=WhoopConnection.updated_at)
        )

    async def save(
        self,
        *,
        user_id: uuid.UUID,
        whoop_user_id: int,
        access_token_enc: str,
        refresh_token_enc: str | None,
        expires_at: datetime,
        scopes: str,
    ) -> None:
        """Create or replace the connection of a user (a new connect flow replaces the old one)."""
        now = utcnow()
        values = {
            "user_id": user_id,
            "whoop_user_id": whoop_user_id,
            "access_token_enc": access_token_enc,
            "refresh_token_enc": refresh_token_enc,
            "expires_at": expires_at,
            "scopes": scopes,
            "status": ConnectionStatus.ACTIVE.value,
            # A new row starts above every version its user's tokens ever had (rows are deleted
            # by a move, a switch or an erase): a refresh that began before can never match it.
            "token_version": first_token_version(),
            "backfill_pending_since": now,  # cleared when the backfill finishes (SPEC 3.2)
            **BACKFILL_RESET,
            "created_at": now,
            "updated_at": now,
        }
        self.forget_held()
        # The WHOOP account may have been connected to another app user before: it moves.
        await self.session.execute(
            delete(WhoopConnection).where(
                WhoopConnection.whoop_user_id == whoop_user_id, WhoopConnection.user_id != user_id
            )
        )
        stmt = dialect_insert(self.session, WhoopConnection.__table__).values(values)
        keep = {k: stmt.excluded[k] for k in values if k not in ("user_id", "created_at")}
        keep["token_version"] = WhoopConnection.__table__.c.token_version + 1
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["user_id"], set_=keep)
        )

    async def store_tokens(
        self,
        user_id: uuid.UUID,
        *,
        expected_version: int,
        access_token_enc: str,
        refresh_token_enc: str | None,
        expires_at: datetime,
    ) -> bool:
        """Replace the tokens if nobody else did since `expected_version`; True when written."""
        result = await self.session.execute(
            update(WhoopConnection)
            .where(
                WhoopConnection.user_id == user_id,
                WhoopConnection.token_version == expected_version,
            )
            .values(
                access_token_enc=access_token_enc,
                refresh_token_enc=refresh_token_enc,
                expires_at=expires_at,
                token_version=expected_version + 1,
                status=ConnectionStatus.ACTIVE.value,
                updated_at=utcnow(),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_status(
        self, user_id: uuid.UUID, status: ConnectionStatus, *, expected_version: int | None = None
    ) -> bool:
        """Mark the connection active, reauthorization_required or revoked; with
        `expected_version`, only if its tokens are still that version. True when written."""
        stmt = update(WhoopConnection).where(WhoopConnection.user_id == user_id)
        if expected_version is not None:
            stmt = stmt.where(WhoopConnection.token_version == expected_version)
        result = await self.session.execute(stmt.values(status=status.value, updated_at=utcnow()))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_backfill(self, user_id: uuid.UUID, **values: Any) -> None:
        """Write the backfill's progress columns (`backfill_status=…`, …) of a connection."""
        unknown = [k for k in values if not k.startswith("backfill_")]
        if unknown:
            raise ValueError(f"not a backfill column: {unknown}")
        await self.session.execute(
            update(WhoopConnection).where(WhoopConnection.user_id == user_id).values(**values)
        )

    async def restart_failed_backfill(self, user_id: uuid.UUID) -> bool:
        """Make a failed backfill due again from the start; True when there was one."""
        result = await self.session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user_id, WhoopConnection.backfill_status == "failed")
            .values(backfill_pending_since=utcnow(), **BACKFILL_RESET)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def forget_tokens(self, user_id: uuid.UUID) -> None:
        """Drop the tokens and mark the connection revoked; the version moves on, so that a
        refresh still in flight cannot store its tokens and make the connection active again."""
        await self.session.execute(
            update(WhoopConnection)
            .where(WhoopConnection.user_id == user_id)
            .values(
                access_token_enc=None,
                refresh_token_enc=None,
                expires_at=None,
                status=ConnectionStatus.REVOKED.value,
                token_version=WhoopConnection.token_version + 1,
                updated_at=utcnow(),
            )
        )

    async def delete(self, user_id: uuid.UUID) -> None:
        """Remove the connection row."""
        self.forget_held()
        await self.session.execute(
            delete(WhoopConnection).where(WhoopConnection.user_id == user_id)
        )

    async def active(self) -> Sequence[WhoopConnection]:
        """Every connection that can sync."""
        return (
            await self.session.scalars(
                select(WhoopConnection)
                .where(WhoopConnection.status == ConnectionStatus.ACTIVE.value)
                .order_by(WhoopConnection.user_id)
            )
        ).all()

    async def expiring_before(self, moment: datetime) -> Sequence[WhoopConnection]:
        """Active connections whose access token expires before `moment`."""
        return (
            await self.session.scalars(
                select(WhoopConnection).where(
                    WhoopConnection.status == ConnectionStatus.ACTIVE.value,
                    WhoopConnection.expires_at < moment,
                )
            )
        ).all()
