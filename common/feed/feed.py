"""The change feed of one process: the drainer, the wake-ups, and the hook that drains after
every commit that recorded a change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from common.config import Settings
from common.db.repositories.changes import PENDING, Numbered
from common.db.repositories.retention import CHANGES
from common.feed.drain import Drainer
from common.feed.notify import ChangeNotifier
from common.feed.push import enqueue_users
from common.sync.retention import BATCH as PRUNE_BATCH
from common.sync.retention import prune

if TYPE_CHECKING:
    from common.feed.pusher import Pusher
    from common.queue import Queue

AFTER_COMMIT = "feed.after_commit"


@event.listens_for(Session, "after_commit")
def _drain_after_commit(session: Session) -> None:
    """A commit that recorded changes asks its process's drainer to number them."""
    if session.info.pop(PENDING, False):
        hook = session.info.get(AFTER_COMMIT)
        if hook is not None:
            hook()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)


class ChangeFeed:
    """Drains after commits of `session_factory`'s sessions, wakes live readers, hands pushes on."""

    def __init__(self, settings: Settings, session_factory: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.session_factory = session_factory
        self.notifier = ChangeNotifier(settings.redis_url)
        self.drainer = Drainer(
            session_factory, self.notifier, deliveries=settings.app_webhook_url is not None
        )
        self.drainer.on_numbered = self._hand_off
        self.queue: Queue | None = None
        # This process's push senders, when it sends pushes (`common.feed.pusher.pusher_for`).
        self.pusher: Pusher | None = None
        session_factory.configure(info={AFTER_COMMIT: self.drainer.request})

    def use_queue(self, queue: Queue | None) -> None:
        """Where push jobs go once changes are numbered (unset: only the due cron starts them)."""
        self.queue = queue

    async def _hand_off(self, numbered: list[Numbered]) -> None:
        if not self.settings.app_webhook_url:
            return
        users = dict.fromkeys(n.user_id for n in numbered)
        if self.pusher is not None:  # this process sends pushes: no job, no queue round trip
            self.pusher.wake(users)
        elif self.queue is not None:
            await enqueue_users(self.queue, users)

    async def prune(self, *, batch: int = PRUNE_BATCH) -> int:
        """Delete changes and pushes older than RETENTION_DAYS, one committed batch at a time
        (the retention pass's `changes` rule, which the retention cron runs with the others)."""
        done = await prune(
            self.session_factory, self.settings.retention_days, rules=[CHANGES], batch=batch
        )
        return done[CHANGES.name]

    async def aclose(self) -> None:
        """Finish a drain under way, stop the push senders, stop listening."""
        await self.drainer.aclose()
        if self.pusher is not None:
            await self.pusher.aclose()
        await self.notifier.aclose()


__all__ = ["AFTER_COMMIT", "ChangeFeed"]
