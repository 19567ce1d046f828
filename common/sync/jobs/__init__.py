"""Job functions, the same under arq and the in-process queue: plain ids in, re-fetch, upsert.

`ctx` carries `sync` (a SyncContext), `queue` (a Queue) and arq's `job_try`. The jobs live by
concern in this package (`events`, `sweep`, `fetches`, `crons`) and, with the feed's
(`common.feed.jobs`), are registered here. Jobs are where units of work begin and commit: the
services and repositories they call work in the session they are given. The changes a job's
commit recorded are numbered right after it: the change feed listens to the commits of the
context's session factory (`common.feed.feed.ChangeFeed`), and the `drain_changes` cron numbers
what a process that died left behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.feed.jobs import deliver_app, drain_changes, push_due
from common.feed.push import DELIVER_APP
from common.queue import JobSpec
from common.sync.backlog import BACKLOG_TICK_SECONDS, count_backlog
from common.sync.context import SyncContext
from common.sync.inbox import PROCESS_EVENT
from common.sync.jobs.crons import (
    TOKEN_REFRESH_AHEAD,
    prune_retention,
    reconcile_users,
    refetch_pending_scores,
    refresh_tokens,
)
from common.sync.jobs.events import EVENT_TIMEOUT, EVENT_TRIES, backoff, process_webhook_event
from common.sync.jobs.fetches import BACKFILL_TRIES, SYNC_TYPE_TRIES, backfill_user, sync_type
from common.sync.jobs.sweep import SWEEP_TICK_SECONDS, UNSENT_GRACE, sweep_inbox

__all__ = [
    "CRONS",
    "EVENT_TRIES",
    "JOBS",
    "TOKEN_REFRESH_AHEAD",
    "UNSENT_GRACE",
    "CronSpec",
    "backfill_user",
    "backoff",
    "job_context",
    "process_webhook_event",
    "prune_retention",
    "reconcile_users",
    "refetch_pending_scores",
    "refresh_tokens",
    "sweep_inbox",
    "sync_type",
]


def job_context(sync: SyncContext, queue: Any = None) -> dict[str, Any]:
    """The ctx dict jobs expect (arq adds `redis`, `job_try`, … to it)."""
    return {"sync": sync, "queue": queue}


@dataclass(frozen=True)
class CronSpec:
    """A periodic job and how often it runs (seconds, from the settings)."""

    name: str
    func: Callable[[dict[str, Any]], Awaitable[int]]
    every: Callable[[Settings], int]
    timeout: float
    # One run per tick across all workers; a cron that sets this process's gauges runs in each.
    unique: bool = True


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(PROCESS_EVENT, process_webhook_event, max_tries=EVENT_TRIES, timeout=EVENT_TIMEOUT),
        JobSpec("backfill_user", backfill_user, max_tries=BACKFILL_TRIES, timeout=900),
        JobSpec("sync_type", sync_type, max_tries=SYNC_TYPE_TRIES, timeout=300),
        JobSpec(DELIVER_APP, deliver_app, max_tries=3, timeout=10),
    )
}
CRONS: list[CronSpec] = [
    CronSpec(
        "sweep_inbox",
        sweep_inbox,
        lambda s: min(s.inbox_sweep_seconds, SWEEP_TICK_SECONDS),
        timeout=120,
    ),
    # One pass does it all: pending scores, backfills, retries and the audit slice.
    CronSpec("reconcile", reconcile_users, lambda s: s.reconcile_interval_seconds, timeout=900),
    CronSpec("refresh_tokens", refresh_tokens, lambda s: 300, timeout=300),
    CronSpec("retention", prune_retention, lambda s: 3600, timeout=900),
    CronSpec("drain_changes", drain_changes, lambda s: 5, timeout=60),
    CronSpec("push_due", push_due, lambda s: 10, timeout=60),
    CronSpec(
        "count_backlog", count_backlog, lambda s: BACKLOG_TICK_SECONDS, timeout=30, unique=False
    ),
]
