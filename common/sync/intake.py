"""The webhook's intake under a storm: records and hand-offs grouped into batches.

WHOOP may deliver hundreds of webhooks at the same moment and wants each answered within a second.
One INSERT and one Redis round trip per delivery, each over a pooled connection, made a burst of
300 wait on 300 commits and 300 MULTI/EXECs in turn; here every delivery that arrives while a batch
is in flight goes in the next one (one committed INSERT, one pipeline), and a delivery alone still
goes at once. The contract is the inbox's: an event is recorded (committed) before it is answered,
enqueued only when new, and a hand-off the queue refused is taken back for the sweeper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common import tracing
from common.batching import Batcher
from common.db.repositories.inbox_batch import InboxBatchWriter, NewEvent
from common.db.resilient import run_once_more
from common.queue import ArqQueue, Queue, QueueUnavailable
from common.sync.events import is_known
from common.sync.inbox import PROCESS_EVENT
from common.types import EventStatus

if TYPE_CHECKING:
    from opentelemetry.context import Context

__all__ = ["Intake"]

log = structlog.get_logger(__name__)

# A batch's rows: large enough that a storm takes a few round trips, small enough that one
# statement stays short. Two batches in flight keep the database busy while the next one forms.
MAX_BATCH = 100
IN_FLIGHT = 2


class Intake:
    """Record verified deliveries and hand new ones to the queue, batched across requests."""

    def __init__(self, engine: AsyncEngine, queue: Queue | None) -> None:
        self.engine = engine
        self.queue = queue
        self._records: Batcher[NewEvent, int | None] = Batcher(
            self._record, max_size=MAX_BATCH, max_in_flight=IN_FLIGHT
        )
        # Each hand-off carries its request's trace context (None when off): the batch is sent
        # from the batcher's task, and each job's producer span belongs under its own request.
        self._handoffs: Batcher[tuple[int, Context | None], bool] = Batcher(
            self._hand_off, max_size=MAX_BATCH, max_in_flight=IN_FLIGHT
        )

    async def record(
        self, *, trace_id: str, event_type: str, whoop_user_id: int, record_id: str, payload: str
    ) -> tuple[int | None, EventStatus]:
        """Record one delivery (committed when this returns): (id, status), id None for a
        `trace_id` seen before. A new pending event is noted as handed off when a queue exists;
        the caller then calls `hand_off`."""
        status = EventStatus.PENDING if is_known(event_type) else EventStatus.IGNORED
        event = NewEvent(
            trace_id=trace_id,
            event_type=event_type,
            whoop_user_id=whoop_user_id,
            record_id=record_id,
            payload=payload,
            status=status.value,
            enqueued=self.queue is not None and status is EventStatus.PENDING,
        )
        return await self._records.submit(event), status

    async def hand_off(self, event_id: int) -> bool:
        """Enqueue a recorded event; False when the queue refused (the sweeper enqueues it)."""
        return await self._handoffs.submit((event_id, tracing.current()))

    async def _record(self, events: Sequence[NewEvent]) -> list[int | None]:
        async def insert(connection: AsyncConnection) -> list[int | None]:
            """A batch's record is its own unit of work by design: it gathers the deliveries of
            many requests (none owns it), and each is answered 2xx only once it is committed."""
            async with connection.begin():
                return await InboxBatchWriter(connection).record(events)

        # A pooled connection lost to a database restart is replaced and the batch sent once
        # more (ON CONFLICT makes a repeat harmless).
        return await run_once_more(self.engine, insert)

    async def _hand_off(self, handoffs: Sequence[tuple[int, Context | None]]) -> list[bool]:
        """Enqueue a batch; when the queue refuses, clear its hand-off notes, their own unit of
        work by design (the records committed before, and nothing else is written with them)."""
        assert self.queue is not None  # only events noted as handed off come here
        event_ids = [event_id for event_id, _ in handoffs]
        try:
            if isinstance(self.queue, ArqQueue):
                parents = [parent for _, parent in handoffs]
                await self.queue.enqueue_many(
                    PROCESS_EVENT, [(i,) for i in event_ids], parents=parents
                )
            else:
                for event_id, parent in handoffs:
                    with tracing.within(parent):
                        await self.queue.enqueue(PROCESS_EVENT, event_id)
        except QueueUnavailable as exc:
            log.warning("inbox.enqueue_failed", count=len(event_ids), error=str(exc))
        else:
            return [True] * len(event_ids)
        try:
            async with self.engine.begin() as connection:
                await InboxBatchWriter(connection).clear_enqueued(event_ids)
        except Exception:  # the sweeper still finds them once the note is older than its cut-off
            log.warning("inbox.clear_enqueued_failed", count=len(event_ids))
        return [False] * len(event_ids)
