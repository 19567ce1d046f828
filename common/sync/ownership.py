"""Ownership in the write (SPEC §4): a record goes to the app user holding its WHOOP account when
the write commits.

A fetch resolves the app user before it calls WHOOP, and the account may move (the POST callback),
switch away (the user links another account) or be erased before its write. So the write decides
again, inside its own transaction: it locks the connection row of each object's WHOOP account
(`ConnectionRepository.hold`) and writes to whoever holds it then; with no holder it writes
nothing. A move, a switch or an erase updates or deletes that row, so it either waits for the write
to commit (and then moves or deletes what it wrote) or commits first (and the write sees it).
Deletes, the sync log and its attempts are written only while the user still holds a connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import ConnectionRepository, RecordRepository, UpsertSummary
from common.types import DataType

__all__ = ["holds", "upsert_owned"]

log = structlog.get_logger(__name__)


async def upsert_owned(
    session: AsyncSession,
    data_type: DataType,
    objects: Iterable[Mapping[str, Any]],
    resolved: uuid.UUID,
) -> UpsertSummary:
    """The guarded upsert of `objects`, each to the current holder of its WHOOP account
    (`resolved` is whom the fetch was for); objects of an account nobody holds are dropped."""
    by_account: dict[int, list[Mapping[str, Any]]] = {}
    for obj in objects:
        by_account.setdefault(int(obj["user_id"]), []).append(obj)
    summary = UpsertSummary()
    connections = ConnectionRepository(session)
    repo = RecordRepository(session, data_type)
    for whoop_user_id, owned in by_account.items():
        holder = await connections.hold(whoop_user_id=whoop_user_id)
        if holder is None or holder.user_id != resolved:
            log.info(
                "sync.owner_changed",
                data_type=data_type.value,
                fetched_for=str(resolved),
                holder=str(holder.user_id) if holder else None,
                records=len(owned),
            )
        if holder is not None:
            summary.results.update((await repo.upsert(holder.user_id, owned)).results)
    return summary


async def holds(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """True while the user holds a connection (locked until the transaction ends)."""
    return await ConnectionRepository(session).hold(user_id=user_id) is not None
