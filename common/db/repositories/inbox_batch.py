"""All SQL of the webhook's batched intake: many events recorded in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db.models import WebhookEvent
from common.db.resilient import driver_call
from common.db.types import utcnow

_EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class NewEvent:
    """One verified delivery to record."""

    trace_id: str
    event_type: str
    whoop_user_id: int
    record_id: str
    payload: str
    status: str
    enqueued: bool  # note the hand-off in the same statement (the caller enqueues it next)


# One INSERT for the whole batch, its rows passed as arrays: one round trip and one commit
# (one WAL flush) for every event of a burst, instead of one each.
_RECORD_POSTGRES = """
INSERT INTO whoop_webhook_event
  (trace_id, event_type, whoop_user_id, record_id, payload, status, attempts, received_at,
   enqueued_at)
SELECT t, e, u, r, p, s, 0, $8::timestamptz, CASE WHEN q THEN $8::timestamptz END
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
            $7::boolean[]) AS x(t, e, u, r, p, s, q)
ON CONFLICT (trace_id) DO NOTHING RETURNING id, trace_id
"""
_RECORD_SQLITE = (
    sqlite.insert(_EVENTS)
    .values(
        {
            name: bindparam(name, type_=_EVENTS.c[name].type)
            for name in (
                "trace_id",
                "event_type",
                "whoop_user_id",
                "record_id",
                "payload",
                "status",
                "attempts",
                "received_at",
                "enqueued_at",
            )
        }
    )
    .on_conflict_do_nothing(index_elements=["trace_id"])
    .returning(_EVENTS.c.id)
)
_CLEAR_ENQUEUED = update(_EVENTS).where(_EVENTS.c.id.in_(bindparam("ids", expanding=True)))


class InboxBatchWriter:
    """Record many webhook events at once, on a plain connection. On asyncpg the one statement
    goes to the driver outside any transaction and commits by itself; elsewhere the caller's
    transaction scope (`connection.begin()`) commits it."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def record(self, events: Sequence[NewEvent]) -> list[int | None]:
        """Insert the events; per event, its id when new, None when its `trace_id`
        was recorded before (or earlier in the same batch)."""
        now = utcnow()
        first: dict[str, int] = {}  # trace_id -> index of its first occurrence in the batch
        for index, event in enumerate(events):
            first.setdefault(event.trace_id, index)
        unique = [events[i] for i in sorted(first.values())]
        if self.connection.dialect.driver == "asyncpg":
            columns = [
                [getattr(e, name) for e in unique]
                for name in (
                    "trace_id",
                    "event_type",
                    "whoop_user_id",
                    "record_id",
                    "payload",
                    "status",
                    "enqueued",
                )
            ]
            rows = await driver_call(self.connection, "fetch", _RECORD_POSTGRES, *columns, now)
            ids = {row["trace_id"]: int(row["id"]) for row in rows}
        else:
            ids = {}
            for event in unique:
                result = await self.connection.execute(
                    _RECORD_SQLITE,
                    {
                        "trace_id": event.trace_id,
                        "event_type": event.event_type,
                        "whoop_user_id": event.whoop_user_id,
                        "record_id": event.record_id,
                        "payload": event.payload,
                        "status": event.status,
                        "attempts": 0,
                        "received_at": now,
                        "enqueued_at": now if event.enqueued else None,
                    },
                )
                found = result.scalar_one_or_none()
                if found is not None:
                    ids[event.trace_id] = int(found)
        return [
            ids.get(event.trace_id) if first[event.trace_id] == index else None
            for index, event in enumerate(events)
        ]

    async def clear_enqueued(self, event_ids: Sequence[int]) -> None:
        """Take back the hand-off notes of events the queue did not take."""
        await self.connection.execute(_CLEAR_ENQUEUED.values(enqueued_at=None), {"ids": event_ids})
