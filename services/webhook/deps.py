"""What the webhook route needs, set up by a lifespan (the webhook's own, or `serve`'s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.queue import Queue
from common.sync.intake import Intake


@dataclass
class Refusals:
    """The latest 503 not yet written to the channel state (the database may be why it happened),
    also noted in Redis when there is one (`common.sync.refusals`)."""

    unwritten: datetime | None = None
    redis: Redis | None = None


@dataclass(frozen=True)
class WebhookState:
    """The webhook's dependencies; `app.state.webhook` holds one."""

    secret: bytes
    tolerance_seconds: int
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # None when no queue is reachable from this process: events then wait for the sweeper.
    queue: Queue | None
    refusals: Refusals = field(default_factory=Refusals)
    # Records and hand-offs of concurrent deliveries, batched (made from engine and queue).
    intake: Intake = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "intake", Intake(self.engine, self.queue))
