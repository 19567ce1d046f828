"""`whoop-sync replay [--since T] [--status S]`: reopen recorded webhook events and enqueue them again.

Jobs are idempotent, so replaying an event that was already processed only costs WHOOP calls. Without
Redis, the reopened events are picked up by the inbox sweeper of a running `serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta

from common.config import Settings
from common.types import EventStatus

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """An ISO 8601 moment (UTC if it has no offset) or an age such as `30m`, `6h`, `2d`."""
    age = _AGE.match(value.strip())
    if age:
        return datetime.now(UTC) - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or an age: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which events to replay."""
    parser.add_argument(
        "--since", type=parse_since, help="events received since (ISO 8601, or 30m / 6h / 2d)"
    )
    parser.add_argument(
        "--status", choices=[s.value for s in EventStatus], help="only events in this state"
    )


async def replay(
    settings: Settings,
    *,
    since: datetime | None,
    status: EventStatus | None,
    page_size: int = 1000,
) -> tuple[int, int]:
    """Reopen every matching event, a page per transaction, and enqueue each page: (reopened,
    enqueued). A queue that stops answering leaves the rest reopened for the sweeper."""
    from common.db.engine import create_session_factory
    from common.queue import ArqQueue, arq_redis
    from common.sync.context import engine_for
    from common.sync.jobs.replay import replay_events

    engine = engine_for(settings)
    redis = arq_redis(settings.redis_url) if settings.redis_url else None
    try:
        return await replay_events(
            create_session_factory(engine),
            ArqQueue(redis) if redis is not None else None,
            since=since,
            status=status,
            page_size=page_size,
        )
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def main(args: argparse.Namespace) -> int:
    """Replay and say how many."""
    from common.config import get_settings
    from common.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format)
    status = EventStatus(args.status) if args.status else None
    reopened, enqueued = asyncio.run(replay(settings, since=args.since, status=status))
    if settings.redis_url:
        print(f"replayed {reopened} events ({enqueued} enqueued; the rest wait for the sweeper)")
    else:
        print(f"replayed {reopened} events (the sweeper of `serve` enqueues them)")
    return 0
