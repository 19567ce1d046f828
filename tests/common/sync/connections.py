"""Committed connections for the sync tests, and what a connection holds once committed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.crypto import TokenCipher
from common.db.repositories.connections import ConnectionRepository
from common.db.types import utcnow

KEY = Fernet.generate_key().decode()
Factory = async_sessionmaker[AsyncSession]


async def connect(factory: Factory, cipher: TokenCipher, expires_in: timedelta) -> uuid.UUID:
    """A committed connection holding access token a0 and refresh token r0."""
    user_id = uuid.uuid4()
    async with factory() as session:
        await ConnectionRepository(session).save(
            user_id=user_id,
            whoop_user_id=uuid.uuid4().int % 10**12,
            access_token_enc=cipher.encrypt("a0"),
            refresh_token_enc=cipher.encrypt("r0"),
            expires_at=utcnow() + expires_in,
            scopes="offline read:profile",
        )
        await session.commit()
    return user_id


async def stored(factory: Factory, cipher: TokenCipher, user_id: uuid.UUID) -> tuple[str, str, str]:
    """(access token, refresh token, status) as committed."""
    async with factory() as session:
        row = await ConnectionRepository(session).get(user_id)
    assert row is not None
    access = cipher.decrypt(row.access_token_enc) if row.access_token_enc else ""
    refresh = cipher.decrypt(row.refresh_token_enc) if row.refresh_token_enc else ""
    return access, refresh, row.status
