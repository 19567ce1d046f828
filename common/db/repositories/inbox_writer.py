"""The webhook route's single-event writes, each one statement committed by itself on a plain
connection (the batched intake is `inbox_batch`)."""

from __future__ import annotations

from sqlalchemy import Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db.models import WebhookEvent
from common.db.resilient import driver_call
from common.db.types import utcnow
from common.types import EventStatus

_EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]
_COLUMNS = (
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
# The webhook's hot path, built once: one INSERT, committed on its own (no BEGIN/COMMIT around it).
_RECORD_POSTGRES = """
INSERT INTO {table} ({columns}) VALUES ({values})
ON CONFLICT (trace_id) DO NOTHING RETURNING id
""".format(
    table=_EVENTS.name,
    columns=", ".join(_COLUMNS),
    values=", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1)),
)
_RECORD_CORE = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_EVENTS)
    .values({name: bindparam(name, type_=_EVENTS.c[name].type) for name in _COLUMNS})
    .on_conflict_do_nothing(index_elements=["trace_id"])
    .returning(_EVENTS.c.id)
    for dialect in (postgresql, sqlite)
}
_CLEAR_ENQUEUED = (
    update(_EVENTS).where(_EVENTS.c.id == bindparam("event_id")).values(enqueued_at=None)
)


class InboxWriter:
    """The webhook route's writes, one statement each, on a plain connection. On asyncpg the
    statement goes to the driver outside any transaction and commits by itself; elsewhere the
    caller's transaction scope (`connection.begin()`) commits it."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def record(
        self,
        *,
        trace_id: str,
        event_type: str,
        whoop_user_id: int,
        record_id: str,
        payload: str,
        status: EventStatus,
        enqueued: bool,
    ) -> int | None:
        """Insert the event; its id when new, None for a `trace_id` seen before.

        `enqueued` notes the hand-off in the same statement, for a caller about to enqueue it
        (`clear_enqueued` takes the note back if that fails).
        """
        now = utcnow()
        values = (
            *(trace_id, event_type, whoop_user_id, record_id, payload, status.value),
            *(0, now, now if enqueued else None),
        )
        if self.connection.dialect.driver == "asyncpg":
            found: int | None = await driver_call(
                self.connection, "fetchval", _RECORD_POSTGRES, *values
            )
            return found
        stmt = _RECORD_CORE[self.connection.dialect.name]
        result = await self.connection.execute(stmt, dict(zip(_COLUMNS, values, strict=True)))
        return result.scalar_one_or_none()

    async def clear_enqueued(self, event_id: int) -> None:
        """Take back the hand-off note of an event the queue did not take."""
        await self.connection.execute(_CLEAR_ENQUEUED, {"event_id": event_id})
