"""The leases of the events a process works on, renewed together (`LeaseKeeper`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.sync.inbox import Inbox

__all__ = ["LeaseKeeper"]

log = structlog.get_logger(__name__)


class LeaseKeeper:
    """Renews the leases of every event this process works on, in one statement per period:
    a connection per running job for its renewals would drain the pool under load."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], lease_seconds: float
    ) -> None:
        self.session_factory, self.lease_seconds = session_factory, lease_seconds
        self.held: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def keep(self, event_id: int, holder: str) -> AsyncIterator[None]:
        """Keep the event's lease while the block runs."""
        self.held[event_id] = holder
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            self.held.pop(event_id, None)

    async def _renew(self) -> None:
        """Every third of a lease, push every held lease further. Each renewal is its own unit
        of work by design: it serves many jobs at once, and no job's transaction can own it."""
        lease = self.lease_seconds
        while self.held:
            await asyncio.sleep(lease / 3)
            held = dict(self.held)
            if not held:
                continue
            try:
                async with self.session_factory.begin() as session:
                    await Inbox(session).extend_all(held, lease)
            except Exception as exc:  # the database is away: the jobs' own writes will say so
                log.warning("event.leases_not_renewed", count=len(held), error=type(exc).__name__)
