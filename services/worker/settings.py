"""arq worker settings: the job functions, the crons, and the job context built on startup.

`on_startup` builds one SyncContext (engine, sessions, httpx client, WHOOP client, limiter, locks,
cipher, OAuth) over arq's own Redis connection; `on_shutdown` closes it. Jobs find it in `ctx["sync"]`
and the queue to hand work on to in `ctx["queue"]`.

The worker writes arq's health key (`arq:queue:health-check`) every HEALTH_CHECK_INTERVAL seconds,
with a time to live just past it; `whoop-sync worker --check` (compose's health check) reads it.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix
from arq.worker import Worker

from common.config import Settings, get_settings
from common.queue import ArqQueue
from common.sync.context import build_context
from services.worker.crons import cron_jobs
from services.worker.jobs import functions

HEALTH_CHECK_INTERVAL = 10  # seconds; arq's default (an hour) is useless to a health check
HEALTH_CHECK_KEY = default_queue_name + health_check_key_suffix


async def on_startup(ctx: dict[str, Any]) -> None:
    """Build the job context over arq's Redis connection."""
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["sync"] = await build_context(settings, redis=ctx["redis"])
    ctx["queue"] = ArqQueue(ctx["redis"])


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
    handle_signals = True
    health_check_interval = HEALTH_CHECK_INTERVAL
    # Plain data read from the environment (no connection, no Settings object at import time), so
    # that `arq … --check` finds the same Redis as the worker.
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("WHOOPSYNC_REDIS_URL") or "redis://localhost:6379"
    )


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for the configured Redis (ConfigError when unset)."""
    settings.require("redis_url")
    assert settings.redis_url is not None  # checked by require()
    return RedisSettings.from_dsn(settings.redis_url)


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq Worker for these settings (tests pass `burst=True`, `handle_signals=False`, …)."""
    options: dict[str, Any] = {
        "functions": functions(),
        "cron_jobs": cron_jobs(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": redis_settings(settings),
        "ctx": {"settings": settings},
        "max_jobs": WorkerSettings.max_jobs,
        "handle_signals": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "health_check_key": HEALTH_CHECK_KEY,
    }
    return Worker(**(options | overrides))
