"""The feed's job and crons, registered with the others in `common.sync.jobs`."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from common.db.repositories.deliveries import DeliveryRepository
from common.db.types import utcnow
from common.feed.push import deliver_user, enqueue_users
from common.sync.context import SyncContext

log = structlog.get_logger(__name__)


async def deliver_app(ctx: dict[str, Any], user_id: str) -> int:
    """Push one user's due changes to the app's backend, in order."""
    return await deliver_user(ctx["sync"], ctx.get("queue"), uuid.UUID(user_id))


async def drain_changes(ctx: dict[str, Any]) -> int:
    """Number changes whose writer's process died before draining them."""
    sync: SyncContext = ctx["sync"]
    return await sync.feed.drainer.drain()


async def push_due(ctx: dict[str, Any]) -> int:
    """Start push jobs for users whose next push is due (retries, a lost job, a killed worker)."""
    sync: SyncContext = ctx["sync"]
    if not sync.settings.app_webhook_url or ctx.get("queue") is None:
        return 0
    async with sync.session_factory() as session:
        users = await DeliveryRepository(session).due_users(utcnow())
    await enqueue_users(ctx["queue"], users)
    return len(users)
