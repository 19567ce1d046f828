"""The backlog gauges: the worker counts the inbox and the push queue on a cron, for Prometheus."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from common.db.repositories.backlog import Backlog, BacklogRepository
from common.db.types import utcnow
from common.metrics import APP_PUSH_OLDEST_PENDING, APP_PUSHES, INBOX_EVENTS, INBOX_OLDEST_PENDING
from common.sync.context import SyncContext

# Often enough for an alert on the oldest pending event; two aggregate statements a tick.
BACKLOG_TICK_SECONDS = 15


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def export(backlog: Backlog, now: datetime) -> None:
    """Set the backlog gauges from one snapshot."""
    INBOX_EVENTS.labels("pending").set(backlog.events_pending)
    INBOX_EVENTS.labels("parked").set(backlog.events_parked)
    INBOX_EVENTS.labels("failed").set(backlog.events_failed)
    INBOX_OLDEST_PENDING.set(_age(backlog.oldest_pending_at, now))
    APP_PUSHES.labels("pending").set(backlog.pushes_pending)
    APP_PUSHES.labels("failed").set(backlog.pushes_failed)
    APP_PUSH_OLDEST_PENDING.set(_age(backlog.oldest_push_at, now))


async def count_backlog(ctx: dict[str, Any]) -> int:
    """Count the inbox and the push queue into their gauges; how many events are pending."""
    sync: SyncContext = ctx["sync"]
    async with sync.session_factory() as session:
        backlog = await BacklogRepository(session).snapshot()
    export(backlog, utcnow())
    return backlog.events_pending
