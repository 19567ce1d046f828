"""`whoop-sync replay-app [--since T] [--status S]`: send pushes to the app's backend again.

The matching pushes become pending with a fresh day of retries and go out again in order per user
(the receiver sees the same `webhook-id` as before and can drop what it already has). Without
Redis, the push cron of a running `serve` sends them.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from common.config import Settings
from services.commands.replay import parse_since

STATUSES = ("pending", "delivered", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which pushes to send again."""
    parser.add_argument(
        "--since", type=parse_since, help="changes made since (ISO 8601, or 30m / 6h / 2d)"
    )
    parser.add_argument("--status", choices=STATUSES, help="only pushes in this state")


async def replay_app(settings: Settings, *, since: datetime | None, status: str | None) -> int:
    """Reopen the matching pushes and start their users' push jobs; how many users."""
    from common.db.engine import create_session_factory
    from common.queue import ArqQueue, arq_redis
    from common.sync.context import engine_for
    from common.sync.jobs.replay import replay_pushes

    engine = engine_for(settings)
    redis = arq_redis(settings.redis_url) if settings.redis_url else None
    try:
        queue = ArqQueue(redis) if redis is not None else None
        return await replay_pushes(
            create_session_factory(engine), queue, since=since, status=status
        )
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def main(args: argparse.Namespace) -> int:
    """Replay and say for how many users."""
    from common.config import get_settings
    from common.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format)
    if not settings.app_webhook_url:
        print("whoop-sync: WHOOPSYNC_APP_WEBHOOK_URL is not set: there is nowhere to push")
        return 2
    users = asyncio.run(replay_app(settings, since=args.since, status=args.status))
    print(f"reopened the pushes of {users} users; they go out again in order")
    return 0
