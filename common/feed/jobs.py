"""The feed's job and crons, registered with the others in `common.sync.jobs`."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import structlog

from common.db.repositories.deliveries import DeliveryRepository
from common.db.types import utcnow
from common.feed.feed import ChangeFeed
from common.feed.push import PushContext
from common.feed.pusher import pusher_for

log = structlog.get_logger(__name__)


class FeedContext(PushContext, Protocol):
    """What the feed's jobs find in `ctx["sync"]` (the worker's `SyncContext`)."""

    @property
    def feed(self) -> ChangeFeed: ...


async def deliver_app(ctx: dict[str, Any], user_id: str) -> int:
    """Hand one user's due pushes to this process's push senders; returns at once, so a slow
    receiver never keeps a job slot."""
    sync: FeedContext = ctx["sync"]
    if not sync.settings.app_webhook_url:
        return 0
    pusher_for(sync).wake([uuid.UUID(user_id)])
    return 1


async def drain_changes(ctx: dict[str, Any]) -> int:
    """Number changes whose writer's process died before draining them."""
    sync: FeedContext = ctx["sync"]
    return await sync.feed.drainer.drain()


async def push_due(ctx: dict[str, Any]) -> int:
    """Hand users whose next push is due (retries, a lost hand-off, a killed worker) to this
    process's push senders: a user already waiting or being sent is not added twice."""
    sync: FeedContext = ctx["sync"]
    if not sync.settings.app_webhook_url:
        return 0
    async with sync.lookups() as session:
        users = await DeliveryRepository(session).due_users(utcnow())
    pusher_for(sync).wake(users)
    return len(users)
