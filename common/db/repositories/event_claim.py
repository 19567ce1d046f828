"""The claim of a webhook event: its lease taken for a job in one statement that also reads what
the job needs before it calls WHOOP (the event, its connection and, on PostgreSQL, the cache
around its record)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, case, cast, literal_column, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import WebhookEvent
from common.db.repositories.event_cache import (
    CONNECTION_COLUMNS,
    EventCache,
    EventConnection,
    event_cache_columns,
    event_connection,
    event_connection_columns,
    read_event_cache,
)
from common.types import EventStatus

__all__ = ["ClaimedRow", "claim_event"]

_CLAIMED = (
    "id",
    "trace_id",
    "event_type",
    "whoop_user_id",
    "record_id",
    "received_at",
    "attempts",
)


@dataclass(frozen=True)
class ClaimedRow:
    """A pending event just leased to a job, with its connection as the claim found it."""

    id: int
    trace_id: str
    event_type: str
    whoop_user_id: int
    record_id: str
    received_at: datetime
    attempts: int
    connection: EventConnection | None
    # The cache around the event's record as the claim read it (`EventCache`), when it did.
    cache: EventCache | None = None


# A record id the database reads as a UUID (Python's `uuid.UUID` takes other spellings too: the
# claim reads no cache for those, and the job looks at it on its own).
_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _claim_statement(*, with_cache: bool) -> Any:
    """The claim, built once: lease a pending event to `:holder` until `:until` unless another
    holder's lease runs past `:now`, counting an attempt; the event and its connection, and
    `with_cache` (PostgreSQL) the cache around its record (`event_cache_columns`), so that the
    job reads all it needs before WHOOP in this one statement."""
    events: Any = WebhookEvent.__table__
    # Named in full: SQLite writes RETURNING's columns unqualified, and inside the subqueries a
    # bare `whoop_user_id` would be the connection's own.
    account: Any = literal_column(f"{events.name}.whoop_user_id")
    cache: list[Any] = []
    if with_cache:
        record: Any = literal_column(f"{events.name}.record_id")
        key = case((record.regexp_match(_UUID, flags="i"), cast(record, Uuid())), else_=None)
        user_id = event_connection_columns(account)[0]
        cache = event_cache_columns(key, user_id)
    return (
        update(events)
        .where(
            events.c.id == bindparam("event_id"),
            events.c.status == EventStatus.PENDING.value,
            events.c.claimed_until.is_(None)
            | (events.c.claimed_until <= bindparam("now"))
            | (events.c.claimed_by == bindparam("holder")),
        )
        .values(
            attempts=events.c.attempts + 1,
            claimed_by=bindparam("holder"),
            claimed_until=bindparam("until"),
            parked_at=None,
        )
        .returning(
            *(events.c[name] for name in _CLAIMED),
            *event_connection_columns(account),
            *cache,
        )
    )


_CLAIM = _claim_statement(with_cache=False)
_CLAIM_LOOKING = _claim_statement(with_cache=True)


async def claim_event(
    session: AsyncSession, event_id: int, holder: str, until: datetime, now: datetime
) -> ClaimedRow | None:
    """Take the lease of a pending event for `holder` (counting an attempt), unless another
    holder's lease still runs: the event and its connection, read in the same statement, or
    None when not taken. On PostgreSQL the statement also reads the cache around the event's
    record (`ClaimedRow.cache`)."""
    connection = await session.connection()
    looking = connection.dialect.name == "postgresql"
    taken = await connection.execute(
        _CLAIM_LOOKING if looking else _CLAIM,
        {"event_id": event_id, "holder": holder, "until": until, "now": now},
    )
    row = taken.first()
    if row is None:
        return None
    values = tuple(row)
    claimed, rest = values[: len(_CLAIMED)], values[len(_CLAIMED) :]
    fields = dict(zip(_CLAIMED, claimed, strict=True))
    cache = None
    if looking and re.fullmatch(_UUID, str(fields["record_id"]), flags=re.IGNORECASE):
        cache = read_event_cache(rest[len(CONNECTION_COLUMNS) :])
    return ClaimedRow(
        **fields, connection=event_connection(rest[: len(CONNECTION_COLUMNS)]), cache=cache
    )
