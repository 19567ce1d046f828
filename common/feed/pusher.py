"""The push senders of one process: a fixed number of slots of their own, apart from job slots.

A `deliver_app` job, the drainer of a process that sends pushes, and the `push_due` cron only mark
a user as wanted here (`wake`); `PUSH_SLOTS` sender tasks take the wanted users, earliest due first,
and send each one's queue in order (`common.feed.push.deliver_user`). So however slow or dead the
app's receiver is, it holds at most these slots and no job slot, no pooled database connection
during a POST, and memory for at most `MAX_WAITING` users: a wanted user beyond that is dropped
here and found again in the database by the `push_due` cron. A user is wanted once however often
it is woken (no duplicate work), and one slot at a time sends a given user's queue. With tracing
on, a user's sending runs in the trace context of its latest waker (the drain after an event job's
commit), so the push sits in that webhook's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import structlog

from common import tracing
from common.feed.push import PushContext, deliver_user

if TYPE_CHECKING:
    from opentelemetry.context import Context

log = structlog.get_logger(__name__)

# Concurrent deliveries of a process (different users; one user's pushes go one at a time).
PUSH_SLOTS = 16
# Users a process keeps waiting for a slot; beyond it the due cron finds them in the database.
MAX_WAITING = 10_000


class Pusher:
    """Wanted users, earliest due first, and the sender tasks that serve them."""

    def __init__(
        self, sync: PushContext, *, slots: int = PUSH_SLOTS, max_waiting: int = MAX_WAITING
    ) -> None:
        self.sync = sync
        self.slots = slots
        self.max_waiting = max_waiting
        self.dropped = 0
        self._when: dict[uuid.UUID, float] = {}  # waiting users: when due (monotonic clock)
        self._heap: list[tuple[float, int, uuid.UUID]] = []
        self._order = itertools.count()
        self._active: set[uuid.UUID] = set()
        self._again: set[uuid.UUID] = set()  # woken while a slot sends them: look once more
        self._traces: dict[uuid.UUID, Context] = {}  # tracing on: each wanted user's latest waker
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the sender tasks (inside the running loop; once)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._slot()) for _ in range(self.slots)]

    @property
    def waiting(self) -> int:
        """How many users wait for a slot."""
        return len(self._when)

    def wake(self, user_ids: Iterable[uuid.UUID], delay: float = 0.0) -> None:
        """Want these users' queues sent, after `delay` seconds (an earlier wish stands)."""
        due = time.monotonic() + max(0.0, delay)
        trace = tracing.current()
        for user_id in user_ids:
            if user_id in self._active and delay <= 0:
                self._again.add(user_id)
                self._traced(user_id, trace)
                continue
            known = self._when.get(user_id)
            if known is not None and known <= due:
                self._traced(user_id, trace)
                continue
            if known is None and len(self._when) >= self.max_waiting:
                self.dropped += 1  # still pending in the database: the due cron brings it back
                continue
            self._traced(user_id, trace)
            self._when[user_id] = due
            heapq.heappush(self._heap, (due, next(self._order), user_id))
        self._wake.set()

    def _traced(self, user_id: uuid.UUID, trace: Context | None) -> None:
        if trace is not None:
            self._traces[user_id] = trace

    def _take(self) -> tuple[uuid.UUID | None, float | None]:
        """The earliest due waiting user, or (None, when the next one is due)."""
        now = time.monotonic()
        while self._heap:
            due, _, user_id = self._heap[0]
            if self._when.get(user_id) != due:  # superseded by an earlier wish
                heapq.heappop(self._heap)
                continue
            if due > now:
                return None, due
            heapq.heappop(self._heap)
            del self._when[user_id]
            if user_id in self._active:
                self._again.add(user_id)
                continue
            return user_id, None
        return None, None

    async def _slot(self) -> None:
        while True:
            self._wake.clear()
            user_id, next_due = self._take()
            if user_id is None:
                wait = None if next_due is None else max(0.0, next_due - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            self._active.add(user_id)
            try:
                with tracing.within(self._traces.pop(user_id, None)):
                    await deliver_user(self.sync, self, user_id)
            except Exception as exc:  # the database away: the due cron brings the user back
                log.warning("app_push.send_failed", error=type(exc).__name__)
            finally:
                self._active.discard(user_id)
            if user_id in self._again:
                self._again.discard(user_id)
                self.wake([user_id])

    async def aclose(self) -> None:
        """Stop the senders; what they did not send stays pending in the database."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


class HoldsPusher(Protocol):
    """Where a process keeps its pusher (its change feed)."""

    pusher: Pusher | None


class PusherHost(PushContext, Protocol):
    """A process's context, with the change feed that keeps its pusher."""

    @property
    def feed(self) -> HoldsPusher: ...


def pusher_for(sync: PusherHost) -> Pusher:
    """This process's pusher, started on first use; the change feed hands it its users directly
    and closes it with the context."""
    feed = sync.feed
    if feed.pusher is None:
        feed.pusher = Pusher(sync)
        feed.pusher.start()
    pusher: Pusher = feed.pusher
    return pusher
