"""Linking a WHOOP account to an app user (SPEC §3.2): one WHOOP account belongs to one app user.

`link_account` stores the connection of the callback in the caller's transaction. An account that
another user's connection holds (not revoked) is moved only when the caller says the move is proven
(the POST callback, whose bearer owns the state); otherwise `AccountLinked` is raised and nothing is
written. A move ends the old user's connection and, in the same transaction, hands the account's
cached records, sync state and history to the new user, so that no user ever reads another's rows
and none is left behind. A user who links another account (W2 after W1) loses W1's records, sync
state and history in the same transaction, each record with a `deleted` change. The feed says it:
`connection.revoked` for a connection that ends, `connection.created` for the new one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import ConnectionRepository, RecordRepository, SyncLogRepository
from common.db.types import utcnow
from common.feed.lifecycle import CONNECTION_CREATED, CONNECTION_REVOKED, record_lifecycle
from common.types import ConnectionStatus, DataType

__all__ = ["AccountLinked", "EncryptedTokens", "link_account"]

log = structlog.get_logger(__name__)


class AccountLinked(Exception):
    """The WHOOP account is held by another app user's connection and the link may not move it."""


@dataclass(frozen=True)
class EncryptedTokens:
    """The tokens of a code exchange, already encrypted, and what they grant."""

    access_token_enc: str
    refresh_token_enc: str | None
    expires_at: datetime
    scopes: str


async def link_account(
    session: AsyncSession,
    user_id: uuid.UUID,
    whoop_user_id: int,
    tokens: EncryptedTokens,
    *,
    may_move: bool,
) -> uuid.UUID | None:
    """Connect `whoop_user_id` to `user_id` (flushed, not committed); the user it was moved from,
    if any. Raises AccountLinked when another user's live connection holds it and not `may_move`."""
    connections = ConnectionRepository(session)
    await connections.claim(whoop_user_id)
    holder = await connections.by_whoop_user(whoop_user_id)
    moved_from = holder.user_id if holder is not None and holder.user_id != user_id else None
    if (
        moved_from is not None
        and holder is not None
        and holder.status != ConnectionStatus.REVOKED.value
        and not may_move
    ):
        raise AccountLinked(whoop_user_id)
    own = await connections.get(user_id, for_update=True)
    if own is not None and own.whoop_user_id != whoop_user_id:
        await _end_other_account(session, user_id, own.whoop_user_id, own.status)
    new_to_user = own is None or own.whoop_user_id != whoop_user_id
    await connections.save(  # ends the old holder's connection: the account is unique
        user_id=user_id,
        whoop_user_id=whoop_user_id,
        access_token_enc=tokens.access_token_enc,
        refresh_token_enc=tokens.refresh_token_enc,
        expires_at=tokens.expires_at,
        scopes=tokens.scopes,
    )
    # A link asks for the account's history again: what a purge buried comes back with the
    # backfill (WHOOP's versions are older than the purge, which would refuse them for good).
    for data_type in DataType:
        for holder_id in {user_id, moved_from} - {None}:
            assert holder_id is not None
            await RecordRepository(session, data_type).forget_deletions(holder_id)
    now = utcnow()
    if (
        moved_from is not None
        and holder is not None
        and holder.status != ConnectionStatus.REVOKED.value
    ):
        await record_lifecycle(
            session,
            user_id=moved_from,
            whoop_user_id=whoop_user_id,
            action=CONNECTION_REVOKED,
            at=now,
        )
    if new_to_user:
        await _take_over(session, user_id, whoop_user_id, moved_from)
    await record_lifecycle(
        session, user_id=user_id, whoop_user_id=whoop_user_id, action=CONNECTION_CREATED, at=now
    )
    await session.flush()
    return moved_from


async def _end_other_account(
    session: AsyncSession, user_id: uuid.UUID, old_whoop_user_id: int, status: str
) -> None:
    """The user links another WHOOP account (SPEC §3.2): the old account's records, sync state
    and history stop being the user's, each record with a `deleted` change."""
    removed = 0
    for data_type in DataType:
        removed += await RecordRepository(session, data_type).remove_account(
            user_id, old_whoop_user_id
        )
    await SyncLogRepository(session).delete_user(user_id)
    if status != ConnectionStatus.REVOKED.value:
        await record_lifecycle(
            session,
            user_id=user_id,
            whoop_user_id=old_whoop_user_id,
            action=CONNECTION_REVOKED,
            at=utcnow(),
        )
    log.info(
        "connection.account_switched",
        user_id=str(user_id),
        from_whoop_user_id=old_whoop_user_id,
        records=removed,
    )


async def _take_over(
    session: AsyncSession, user_id: uuid.UUID, whoop_user_id: int, moved_from: uuid.UUID | None
) -> None:
    """Hand the account's cached records, sync state and history to the user who now holds it."""
    moved = 0
    for data_type in DataType:
        moved += await RecordRepository(session, data_type).reassign(whoop_user_id, user_id)
    sync_log = SyncLogRepository(session)
    if moved_from is not None:
        await sync_log.move_user(moved_from, user_id)
    else:  # whatever state the user had was another account's
        await sync_log.delete_user(user_id)
    log.info(
        "connection.account_moved" if moved_from else "connection.account_linked",
        user_id=str(user_id),
        whoop_user_id=whoop_user_id,
        from_user_id=str(moved_from) if moved_from else None,
        records=moved,
    )
