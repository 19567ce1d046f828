"""Erase (SPEC §3.5): every copy of one user's WHOOP data goes in one step.

`erase_user` revokes access at WHOOP first (outside any transaction: no row stays locked across the
network), then, in one transaction (its route commits it), deletes the user's records of all four types, tombstones, sync
state and history, the payloads of the account's webhook events, the user's changes in the feed and
their pushes, the connection itself; and records one `user.erased` change, which is numbered,
streamed and pushed like any other (the app's backend deletes its copy on it; an open event stream
of the user ends with it). The transaction starts by locking the connection row, which every write
holds too (SPEC §4): a job that was fetching for the user when the erase committed finds no
connection at its write and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories.connections import ConnectionRepository
from common.db.repositories.erase import EraseRepository
from common.db.types import utcnow
from common.feed.lifecycle import USER_ERASED, record_lifecycle
from common.ratelimit import Priority
from common.sync.results import ALL_TYPES
from common.whoop.client import TokenSource, WhoopClient
from common.whoop.errors import WhoopError

__all__ = ["EraseReceipt", "NotConnected", "Revoke", "erase_user", "revoke_with"]

log = structlog.get_logger(__name__)

# Revokes the user's access at WHOOP; True when WHOOP confirmed it.
Revoke = Callable[[uuid.UUID], Awaitable[bool]]


class NotConnected(Exception):
    """The user has no WHOOP connection (never had, or was erased already)."""


@dataclass(frozen=True)
class EraseReceipt:
    """What an erase deleted, counted by kind, and when."""

    user_id: uuid.UUID
    whoop_user_id: int
    erased_at: datetime
    revoked_at_whoop: bool
    deleted: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The receipt as the API answers it."""
        return {
            "user_id": str(self.user_id),
            "whoop_user_id": self.whoop_user_id,
            "erased_at": self.erased_at,
            "revoked_at_whoop": self.revoked_at_whoop,
            "deleted": self.deleted,
        }


def revoke_with(whoop: WhoopClient, tokens: Callable[[uuid.UUID], TokenSource]) -> Revoke:
    """A `Revoke` over the WHOOP client (`DELETE /v2/user/access`, at interactive priority)."""

    async def revoke(user_id: uuid.UUID) -> bool:
        try:
            await whoop.for_user(tokens(user_id), Priority.INTERACTIVE).revoke_access()
        except WhoopError as exc:
            log.warning("connection.revoke_failed", user_id=str(user_id), error=exc.reason)
            return False
        except RedisError as exc:  # no budget or refresh lock to be had: erase anyway
            log.warning("connection.revoke_failed", user_id=str(user_id), error=type(exc).__name__)
            return False
        return True

    return revoke


async def erase_user(session: AsyncSession, user_id: uuid.UUID, *, revoke: Revoke) -> EraseReceipt:
    """Revoke at WHOOP, then erase the user in one transaction, which the caller (a route)
    commits; the receipt.

    Raises NotConnected when the user has no connection. Give it a session without pending work:
    its first read is ended (rolled back) before WHOOP is called.
    """
    connections = ConnectionRepository(session)
    row = await connections.get(user_id)
    if row is None:
        await session.rollback()
        raise NotConnected(user_id)
    has_tokens = row.access_token_enc is not None
    await session.rollback()  # a read only: no transaction stays open across the WHOOP call
    revoked = has_tokens and await revoke(user_id)
    # Lock the connection first: writers holding it finish before, later ones find it gone.
    await connections.forget_tokens(user_id)
    row = await connections.get(user_id)
    if row is None:  # erased meanwhile by another request
        await session.rollback()
        raise NotConnected(user_id)
    whoop_user_id = row.whoop_user_id
    deleted = await _delete_everything(session, user_id, whoop_user_id)
    erased_at = utcnow()
    await record_lifecycle(
        session, user_id=user_id, whoop_user_id=whoop_user_id, action=USER_ERASED, at=erased_at
    )
    log.info("user.erased", user_id=str(user_id), revoked_at_whoop=revoked, **_flat(deleted))
    return EraseReceipt(user_id, whoop_user_id, erased_at, revoked, deleted)


async def _delete_everything(
    session: AsyncSession, user_id: uuid.UUID, whoop_user_id: int
) -> dict[str, Any]:
    erase = EraseRepository(session)
    records = {
        data_type.value: await erase.records(data_type, user_id, whoop_user_id)
        for data_type in ALL_TYPES
    }
    tombstones = await erase.tombstones(user_id)
    sync_states, sync_attempts = await erase.sync_state(user_id)
    events = await erase.webhook_payloads(whoop_user_id)
    changes, pending_pushes, sent_pushes = await erase.feed(user_id)
    connections, oauth_states = await erase.connection(user_id)
    ConnectionRepository(session).forget_held()
    return {
        "records": records,
        "tombstones": tombstones,
        "sync_states": sync_states,
        "sync_attempts": sync_attempts,
        "webhook_event_payloads": events,
        "changes": changes,
        "pending_pushes": pending_pushes,
        "push_history": sent_pushes,
        "connections": connections,
        "oauth_states": oauth_states,
    }


def _flat(deleted: dict[str, Any]) -> dict[str, int]:
    flat = {f"records_{k}": v for k, v in deleted["records"].items()}
    return flat | {k: v for k, v in deleted.items() if k != "records"}
