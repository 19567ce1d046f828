"""`whoop-sync worker [--burst | --check]`: the arq worker (sync jobs, reconciliation, token refresh,
inbox sweep), or its health check for compose (`["CMD", "whoop-sync", "worker", "--check"]`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import warnings

from common.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No connection options: Redis and the database come from the settings."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--burst", action="store_true", help="run queued jobs, then exit (for scripts and tests)"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker wrote its health key lately, else 1 (a container health check)",
    )


async def check_health(settings: Settings) -> tuple[bool, str]:
    """Whether a live worker keeps arq's health key in Redis, and one line saying so."""
    from arq.worker import async_check_health
    from redis.exceptions import RedisError

    from services.worker.settings import HEALTH_CHECK_INTERVAL, HEALTH_CHECK_KEY, redis_settings

    # One quick try: a health check that retries for seconds is a health check that times out.
    target = dataclasses.replace(redis_settings(settings), conn_retries=0, conn_timeout=2)
    # arq logs its own verdict too; this line is the one answer (NullHandler: no stderr echo).
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


def main(args: argparse.Namespace) -> int:
    """Run the worker until interrupted (or, with --burst, until the queue is empty)."""
    from common.config import get_settings

    settings = get_settings()
    settings.require("redis_url")
    if args.check:
        healthy, line = asyncio.run(check_health(settings))
        print(line)
        return 0 if healthy else 1

    from common.logging import configure_logging
    from services.worker.settings import create_worker

    configure_logging(settings.log_format)
    # arq's own loop: SIGTERM and SIGINT let running jobs finish (or hand them back) before exit.
    create_worker(settings, burst=args.burst).run()
    return 0
