"""arq worker settings: the job functions, the crons, and the job context built on startup.

`on_startup` builds one SyncContext (engine, sessions, httpx client, WHOOP client, limiter, locks,
cipher, OAuth) over arq's own Redis connection; `on_shutdown` closes it. Jobs find it in `ctx["sync"]`
and the queue to hand work on to in `ctx["queue"]`.

The worker writes arq's health key every HEALTH_CHECK_INTERVAL seconds (see `health.py`).
"""

from __future__ import annotations

import gc
import os
from typing import Any

from arq.connections import RedisSettings

from common.config import Settings, get_settings
from common.feed.pusher import pusher_for
from common.queue import ArqQueue
from common.sync.context import build_context
from services.worker.crons import cron_jobs
from services.worker.health import HEALTH_CHECK_INTERVAL, HEALTH_CHECK_KEY, redis_settings
from services.worker.jobs import functions
from services.worker.resilient import ResilientWorker


async def on_startup(ctx: dict[str, Any]) -> None:
    """Build the job context over arq's Redis connection."""
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["sync"] = await build_context(settings, redis=ctx["redis"])
    # The sweeper and the jobs answer no one: their hand-offs may wait longer than a webhook.
    ctx["queue"] = ArqQueue(ctx["redis"], timeout=5.0)
    ctx["sync"].feed.use_queue(ctx["queue"])
    if settings.app_webhook_url:
        # Pushes go out from slots of their own (common.feed.pusher), never from the job slots
        # below: a slow receiver cannot take the slots that WHOOP events need.
        pusher_for(ctx["sync"])
    # What start-up built lives as long as the process: out of the collector's sight, so that
    # its collections walk only what jobs allocate.
    gc.collect()
    gc.freeze()


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """Close what on_startup built."""
    if "sync" in ctx:
        await ctx["sync"].close()


class WorkerSettings:
    """For `arq services.worker.settings.WorkerSettings [--check]`; `whoop-sync worker` builds its
    own Worker from the Settings (Redis URL, crons) through `create_worker`."""

    functions = functions()
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_jobs = 20
    # arq looks for due jobs every poll_delay seconds when idle (default 0.5 s): that wait was most
    # of the webhook-to-readable lag. 50 ms costs one cheap ZRANGEBYSCORE per tick.
    poll_delay = 0.05
    handle_signals = True
    health_check_interval = HEALTH_CHECK_INTERVAL
    # Plain data read from the environment (no connection, no Settings object at import time), so
    # that `arq … --check` finds the same Redis as the worker.
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("WHOOPSYNC_REDIS_URL") or "redis://localhost:6379"
    )


def create_worker(settings: Settings, **overrides: Any) -> ResilientWorker:
    """An arq Worker for these settings (tests pass `burst=True`, `handle_signals=False`, …)."""
    options: dict[str, Any] = {
        "functions": functions(),
        "cron_jobs": cron_jobs(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": redis_settings(settings),
        "ctx": {"settings": settings},
        "max_jobs": WorkerSettings.max_jobs,
        "poll_delay": WorkerSettings.poll_delay,
        "handle_signals": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "health_check_key": HEALTH_CHECK_KEY,
    }
    return ResilientWorker(**(options | overrides))
