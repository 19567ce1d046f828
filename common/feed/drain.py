"""The drainer: numbers committed outbox rows into the feed, then wakes readers and pushers.

It runs right after a write commits (triggered from the session's commit) and periodically (a
cron, for writes whose process died before its drain). Within a process one drain runs at a time
and requests arriving meanwhile fold into one more pass; across processes the database lock in
`ChangeRepository.drain` keeps a single numbering writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories.changes import ChangeRepository, Numbered
from common.db.types import utcnow
from common.feed.notify import ChangeNotifier
from common.metrics import CHANGES_NUMBERED, FEED_LAG

log = structlog.get_logger(__name__)

BATCH = 500
# A pass asked for while one ran waits this long after it: under load the commits of that moment
# are numbered together (one transaction for several writers') instead of a pass each; an idle
# feed's first pass starts at once.
LINGER = 0.01
OnNumbered = Callable[[list[Numbered]], Awaitable[None]]


class Drainer:
    """Numbers the outbox; `request()` is safe to call from a commit hook (it only schedules)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        notifier: ChangeNotifier,
        *,
        deliveries: bool,
    ) -> None:
        # On PostgreSQL a batch is one statement (`ChangeRepository.drain`): an autocommit
        # session (`create_lookup_factory`) runs it in one round trip, its own transaction.
        self.session_factory = session_factory
        self.notifier = notifier
        self.deliveries = deliveries
        self.on_numbered: OnNumbered | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._closed = False

    def request(self) -> None:
        """Drain soon, in a task of this process's loop (coalesced with a drain under way)."""
        if self._closed:  # shutting down: the periodic drain of another process numbers it
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the periodic drain picks it up
            return
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.drain()
            except Exception as exc:  # the database away: the periodic drain tries again
                log.warning("feed.drain_failed", error=type(exc).__name__)
                return
            if not self._again:
                return
            await asyncio.sleep(LINGER)

    async def drain(self) -> int:
        """Number everything committed in the outbox; how many changes were numbered.

        Each batch is its own unit of work by design: numbers are handed out under the drain's
        lock, and its transaction commits before the lock is released (what makes the feed
        gap-safe, `common.db.repositories.changes`); no writer's transaction can own it, since
        it numbers what many writers committed."""
        total = 0
        while True:
            async with self.session_factory.begin() as session:
                numbered = await ChangeRepository(session).drain(
                    batch=BATCH, deliveries=self.deliveries
                )
            if not numbered:
                return total
            total += len(numbered)
            now = utcnow()
            for change in numbered:
                FEED_LAG.observe(max(0.0, (now - change.changed_at).total_seconds()))
            CHANGES_NUMBERED.inc(len(numbered))
            await self.notifier.publish({n.user_id for n in numbered})
            if self.on_numbered is not None:
                try:
                    await self.on_numbered(numbered)
                except Exception as exc:  # the queue away: the delivery cron finds them
                    log.warning("feed.handoff_failed", error=type(exc).__name__)
            if len(numbered) < BATCH:
                return total

    async def aclose(self) -> None:
        """Wait for a drain under way (its changes are committed or not, never half)."""
        self._closed = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
