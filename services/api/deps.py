"""Typed dependencies of the api: its state, a session per request, the bearer's user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.auth import AuthError, TokenVerifier
from common.config import Settings
from common.crypto import TokenCipher
from common.queue import Queue
from common.whoop.client import TokenSource, WhoopClient
from common.whoop.oauth import OAuthClient
from services.api.errors import ApiError
from services.api.reads import SmartReader
from services.api.streams import StreamSlots


@dataclass
class ApiState:
    """Everything the routes use, built once in the lifespan (`app.state.api`)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    # One statement at a time (autocommit on PostgreSQL): the live readers' looks.
    lookups: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    reader: SmartReader
    whoop: WhoopClient
    oauth: OAuthClient
    cipher: TokenCipher
    tokens: Callable[[uuid.UUID], TokenSource]
    queue: Queue
    # Open event streams per user (SPEC 3.5), across api processes when Redis is set.
    streams: StreamSlots


async def get_state(request: Request) -> ApiState:
    """The api's state from the running app."""
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One session per request; routes commit what they change."""
    async with state.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

bearer = HTTPBearer(auto_error=False, description="A JWT whose `sub` is the app user's UUID")


async def current_user(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> uuid.UUID:
    """The user the bearer token speaks for; 401 in the error form otherwise."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "Missing bearer token", challenge)
    try:
        user_id = await state.verifier.verify_token(credentials.credentials)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", str(exc), challenge) from None
    structlog.contextvars.bind_contextvars(user_id=str(user_id))
    return user_id


UserDep = Annotated[uuid.UUID, Depends(current_user)]
