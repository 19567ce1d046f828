"""What the operators' charts and counts read back (SPEC §3.6), written where it happens.

* WHOOP calls per hour by trigger. Each entry point (a webhook job, a backfill, a read, the
  reconciliation pass, an operator's sync) names its trigger with `tag_calls`; the WHOOP client
  calls `CallLog.note` for every call it sends, and the log adds the calls up in memory and writes
  them to `whoop_call_hour` every few seconds and when the process stops. A call made outside any
  tagged entry point counts as `other` (the connect flow's profile read).
* Incidents (`note_incident`): audit misses, users a reconciliation pass could not handle, and
  webhook refusals, one row each, so that "in the last 24 h" is the same in every process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextvars import ContextVar
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories.ops import OpsRepository
from common.db.types import utcnow
from common.types import Trigger

__all__ = ["FLUSH_SECONDS", "OTHER", "CallLog", "note_incident", "tag_calls"]

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 5.0
OTHER = "other"
_TRIGGER: ContextVar[str] = ContextVar("whoop_call_trigger", default=OTHER)


def tag_calls(trigger: Trigger | str) -> None:
    """Count the WHOOP calls made from here on in this task (and the tasks it starts) under
    `trigger`."""
    _TRIGGER.set(str(trigger))


class CallLog:
    """WHOOP calls counted per (hour, trigger) in memory and written to the database in batches."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], every: float = FLUSH_SECONDS
    ) -> None:
        self.session_factory = session_factory
        self.every = every
        self._counts: Counter[tuple[datetime, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def note(self) -> None:
        """One WHOOP call is being sent now, for the current task's trigger."""
        hour = utcnow().replace(minute=0, second=0, microsecond=0)
        self._counts[(hour, _TRIGGER.get())] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.every)
        await self.flush()

    async def flush(self) -> None:
        """Write what was counted; kept for the next flush when the database is away.

        A flush is its own unit of work by design: it writes, from a background task, calls
        that many jobs and requests made, and none of their transactions may carry it."""
        counts, self._counts = self._counts, Counter()
        if not counts:
            return
        try:
            async with self.session_factory.begin() as session:
                await OpsRepository(session).add_calls(counts)
        except Exception as exc:
            self._counts.update(counts)
            log.warning("oplog.calls_unwritten", calls=counts.total(), error=type(exc).__name__)

    async def aclose(self) -> None:
        """Write what is left (the process is stopping)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()


async def note_incident(
    session_factory: async_sessionmaker[AsyncSession],
    kind: str,
    detail: str | None = None,
    count: int = 1,
) -> None:
    """Record an incident in its own transaction; a database that is away only loses the row.

    An incident is its own unit of work by design: it is noted where something failed, so the
    work it reports on may be rolled back, and it must stay written all the same."""
    try:
        async with session_factory.begin() as session:
            await OpsRepository(session).note(kind, detail, count)
    except Exception as exc:
        log.warning("oplog.incident_unwritten", kind=kind, error=type(exc).__name__)
