"""Retention (SPEC §2, `RETENTION_DAYS`): what is old enough to delete, deleted in small batches.

Each rule names a table and what makes one of its rows expired, given the cut-off moment. Rows go
in batches of at most `batch` by primary key (`DELETE … WHERE key IN (SELECT key … LIMIT n)`),
each batch its own short transaction, so no lock is held for long and SQLite's single writer is
free between batches. A new table to prune is one more line in RULES. A rule whose rows need more
than a delete (the change feed moves its horizon with each batch) brings its own `remove`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import (
    Change,
    OAuthState,
    OpsIncident,
    SyncAttempt,
    WebhookEvent,
    WhoopCallHour,
)
from common.db.repositories.changes import ChangeRepository
from common.db.repositories.record_kinds import KINDS
from common.types import EventStatus

__all__ = ["CHANGES", "RULES", "RetentionRule", "delete_batch"]

CLOSED = tuple(s.value for s in EventStatus if s is not EventStatus.PENDING)


def _table(model: object) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True)
class RetentionRule:
    """One table's rows older than the cut-off, and which of them count as expired."""

    name: str
    table: Table
    expired: Callable[[Table, datetime], ColumnElement[bool]]
    # Deletes one batch itself (session, cut-off, batch size → rows deleted) instead of `expired`.
    remove: Callable[[AsyncSession, datetime, int], Awaitable[int]] | None = None


async def _prune_changes(session: AsyncSession, cutoff: datetime, batch: int) -> int:
    return await ChangeRepository(session).prune_batch(cutoff, batch)


# The change feed (and its pushes): the oldest changes first, the horizon moving with each batch,
# so that a cursor the batch passes is answered 410 from its commit on, never skipped.
CHANGES = RetentionRule(
    "changes", _table(Change), lambda t, cut: t.c.changed_at < cut, remove=_prune_changes
)


RULES: list[RetentionRule] = [
    # Closed webhook events, payloads and all; pending ones stay until they are processed.
    RetentionRule(
        "webhook_events",
        _table(WebhookEvent),
        lambda t, cut: t.c.status.in_(CLOSED) & (t.c.received_at < cut),
    ),
    # The attempt history; the latest state per user and type is whoop_sync_log, which stays.
    RetentionRule("sync_attempts", _table(SyncAttempt), lambda t, cut: t.c.started_at < cut),
    # OAuth states, used or not, are valid ten minutes: long expired past the cut-off.
    RetentionRule("oauth_states", _table(OAuthState), lambda t, cut: t.c.expires_at < cut),
    # The operators' tallies look back a day; a longer history is for Prometheus.
    RetentionRule("ops_incidents", _table(OpsIncident), lambda t, cut: t.c.at < cut),
    RetentionRule("whoop_call_hours", _table(WhoopCallHour), lambda t, cut: t.c.hour < cut),
    # A tombstone only has to outlive the writes that fetched before the deletion (a job and
    # its retries: hours at most); RETENTION_DAYS is at least a day.
    *(
        RetentionRule(f"{t.value}_tombstones", kind.tombstones, lambda t, cut: t.c.deleted_at < cut)
        for t, kind in KINDS.items()
    ),
    CHANGES,
]


async def delete_batch(
    session: AsyncSession, rule: RetentionRule, cutoff: datetime, batch: int
) -> int:
    """Delete at most `batch` expired rows of the rule's table; how many went (the caller commits)."""
    if rule.remove is not None:
        return await rule.remove(session, cutoff, batch)
    table = rule.table
    (key,) = table.primary_key.columns
    chosen = select(key).where(rule.expired(table, cutoff)).limit(batch).scalar_subquery()
    result = await session.execute(delete(table).where(key.in_(chosen)))
    return int(result.rowcount)  # type: ignore[attr-defined]
