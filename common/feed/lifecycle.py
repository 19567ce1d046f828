"""Lifecycle changes (SPEC §3.5): a user's connection and backfill, in the feed's own numbering.

A lifecycle change has no data type and no record id; its `action` names it, `updated_at` says
when it happened and `record` is null but for `backfill.completed` (the backfill object of §3.2).
It goes through the outbox like a record change, in the caller's transaction, so it is numbered,
streamed (SSE `event:` the action) and pushed (`type` the action) like any other.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import Change
from common.db.repositories.outbox import ChangeRecorder

CONNECTION_CREATED = "connection.created"
REAUTHORIZATION_REQUIRED = "connection.reauthorization_required"
CONNECTION_REVOKED = "connection.revoked"
BACKFILL_COMPLETED = "backfill.completed"
USER_ERASED = "user.erased"
ACTIONS = frozenset(
    {
        CONNECTION_CREATED,
        REAUTHORIZATION_REQUIRED,
        CONNECTION_REVOKED,
        BACKFILL_COMPLETED,
        USER_ERASED,
    }
)


async def record_lifecycle(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    whoop_user_id: int,
    action: str,
    at: datetime,
    record: dict[str, Any] | None = None,
) -> None:
    """Add a lifecycle change to the outbox in the caller's transaction (the caller commits)."""
    if action not in ACTIONS:
        raise ValueError(f"not a lifecycle action: {action}")
    data = None if record is None else orjson.dumps(record).decode()
    await ChangeRecorder(session).lifecycle(user_id, whoop_user_id, action, at, data)


def event_name(change: Change) -> str:
    """A change's SSE `event:` and push `type`: `sleep.upserted`, or the lifecycle action."""
    if change.data_type is None:
        return change.action
    return f"{change.data_type}.{change.action}"
