"""What the webhook route needs, set up by a lifespan (the webhook's own, or `serve`'s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.queue import Queue


@dataclass
class Refusals:
    """The latest 503 not yet written to the channel state (the database may be why it happened)."""

    unwritten: datetime | None = None


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


async def get_state(request: Request) -> WebhookState:
    """The WebhookState of the running app."""
    state: WebhookState = request.app.state.webhook
    return state


StateDep = Annotated[WebhookState, Depends(get_state)]
