"""The change feed of one process: the drainer, the wake-ups, and the hook that drains after
every commit that recorded a change.

The hook is attached by `ChangeFeed` to the session factory it is given (to a session class of
that factory's own, never to `Session` itself): a commit of one of its sessions whose transaction
inserted into the outbox asks the drainer to number the changes now. Sessions of other factories
are not watched; the `drain_changes` cron numbers whatever a hook missed (a process that died).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from common.config import Settings
from common.db.models import ChangeOutbox
from common.db.repositories.changes import Numbered
from common.db.repositories.retention import CHANGES
from common.feed.drain import Drainer
from common.feed.notify import ChangeNotifier
from common.feed.push import enqueue_users
from common.retention import BATCH as PRUNE_BATCH
from common.retention import prune

if TYPE_CHECKING:
    from common.feed.pusher import Pusher
    from common.queue import Queue

OUTBOX = ChangeOutbox.__tablename__


class ChangeFeed:
    """Drains after commits of `session_factory`'s sessions, wakes live readers, hands pushes on."""

    def __init__(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        drains: async_sessionmaker[AsyncSession] | None = None,
    ):
        """`drains`: the sessions the drainer numbers in (`create_lookup_factory`'s: a drain is
        one statement on PostgreSQL); by default `session_factory`'s."""
        self.settings = settings
        self.session_factory = session_factory
        self.notifier = ChangeNotifier(settings.redis_url)
        self.drainer = Drainer(
            drains or session_factory,
            self.notifier,
            deliveries=settings.app_webhook_url is not None,
        )
        self.drainer.on_numbered = self._hand_off
        self.queue: Queue | None = None
        # This process's push senders, when it sends pushes (`common.feed.pusher.pusher_for`).
        self.pusher: Pusher | None = None
        # Sessions whose open transaction inserted into the outbox (forgotten at its end).
        self._recorded: weakref.WeakSet[Session] = weakref.WeakSet()
        self._watch(session_factory)

    def _watch(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        """Drain after every commit of `session_factory`'s sessions that recorded a change: the
        factory's sessions get a class of their own (a `sessionmaker`'s), listened to here."""
        base = session_factory.kw.get("sync_session_class") or Session
        sessions = sessionmaker(class_=base)
        event.listen(sessions, "do_orm_execute", self._executed)
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", self._recorded.discard)
        session_factory.configure(sync_session_class=sessions.class_)

    def _executed(self, state: ORMExecuteState) -> None:
        """An insert into the outbox, or a statement that says it adds outbox rows itself
        (`records_changes`: PostgreSQL's guarded upsert records its changes in a CTE)."""
        table = getattr(state.statement, "table", None)  # an annotated copy: compare names
        outbox = state.is_insert and getattr(table, "name", None) == OUTBOX
        if outbox or state.execution_options.get("records_changes"):
            self._recorded.add(state.session)

    def _committed(self, session: Session) -> None:
        """A commit that recorded changes asks this process's drainer to number them."""
        if session in self._recorded:
            self._recorded.discard(session)
            self.drainer.request()

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


__all__ = ["ChangeFeed"]
