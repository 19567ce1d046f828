"""The worker's health: arq's health key, written by a live worker, read by `whoop-sync worker --check`.

The worker writes `arq:queue:health-check` every HEALTH_CHECK_INTERVAL seconds with a time to live just
past it (and deletes it on a clean stop), so the key is there exactly while a worker lives. This module
stays light (no job functions, no database) because compose runs the check every few seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

from arq.connections import RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix

from common.config import Settings

HEALTH_CHECK_INTERVAL = 10  # seconds; arq's default (an hour) is useless to a health check
HEALTH_CHECK_KEY = default_queue_name + health_check_key_suffix


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for the configured Redis (ConfigError when unset)."""
    settings.require("redis_url")
    assert settings.redis_url is not None  # checked by require()
    return RedisSettings.from_dsn(settings.redis_url)


async def check_health(settings: Settings) -> tuple[bool, str]:
    """Whether a live worker keeps arq's health key in Redis, and one line saying so."""
    from arq.worker import async_check_health
    from redis.exceptions import RedisError

    # One quick try: a health check that retries for seconds is a health check that times out.
    target = dataclasses.replace(redis_settings(settings), conn_retries=0, conn_timeout=2)
    # arq logs its own verdict too; the returned line is the one answer (no stderr echo).
    logging.getLogger("arq").addHandler(logging.NullHandler())
    try:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis-py's deprecated close(); not ours to fix here.
            warnings.simplefilter("ignore", DeprecationWarning)
            status = await async_check_health(target, HEALTH_CHECK_KEY)
    except (OSError, RedisError, TimeoutError) as exc:
        return False, f"worker unhealthy: Redis unreachable ({type(exc).__name__})"
    if status != 0:
        return False, (
            f"worker unhealthy: no {HEALTH_CHECK_KEY} key in Redis "
            f"(a running worker writes it every {HEALTH_CHECK_INTERVAL} s)"
        )
    return True, f"worker healthy: {HEALTH_CHECK_KEY} is fresh"
