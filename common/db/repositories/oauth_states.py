"""All SQL of the connect flow's single-use states."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import OAuthState
from common.db.types import utcnow

__all__ = ["OAuthStateRepository"]


class OAuthStateRepository:
    """Single-use, expiring `state` values of the connect flow."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self, state: str, user_id: uuid.UUID, ttl: timedelta, *, keep_open: int | None = None
    ) -> None:
        """Remember a state for a user; with `keep_open`, the user's open (unused, unexpired)
        states beyond the newest `keep_open` are dropped, and so are their expired unused ones."""
        now = utcnow()
        self.session.add(
            OAuthState(state=state, user_id=user_id, created_at=now, expires_at=now + ttl)
        )
        await self.session.flush()
        if keep_open is None:
            return
        unused = (OAuthState.user_id == user_id, OAuthState.used_at.is_(None))
        beyond = (
            select(OAuthState.state)
            .where(*unused, OAuthState.expires_at > now)
            .order_by(OAuthState.created_at.desc(), OAuthState.state.desc())
            .offset(keep_open)
        )
        await self.session.execute(
            delete(OAuthState).where(
                *unused, (OAuthState.expires_at <= now) | OAuthState.state.in_(beyond)
            )
        )

    async def open_count(self, user_id: uuid.UUID) -> int:
        """How many unused, unexpired states the user holds."""
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    OAuthState.user_id == user_id,
                    OAuthState.used_at.is_(None),
                    OAuthState.expires_at > utcnow(),
                )
            )
            or 0
        )

    async def consume(self, state: str) -> uuid.UUID | None:
        """Use a state once: the user it was bound to, or None if unknown, used or expired."""
        now = utcnow()
        result = await self.session.execute(
            update(OAuthState)
            .where(
                OAuthState.state == state, OAuthState.used_at.is_(None), OAuthState.expires_at > now
            )
            .values(used_at=now)
            .returning(OAuthState.user_id)
        )
        return result.scalar_one_or_none()

    async def prune(self, before: datetime) -> None:
        """Drop states that expired before `before`."""
        await self.session.execute(delete(OAuthState).where(OAuthState.expires_at < before))
