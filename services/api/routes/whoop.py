"""`/api/v1/whoop`: connecting a WHOOP account (SPEC §3.2), its state, and disconnecting it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Query

from common.db.repositories import (
    ConnectionRepository,
    OAuthStateRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.queue import QueueUnavailable
from common.ratelimit import Priority
from common.types import ConnectionStatus, DataType
from common.whoop.errors import WhoopAuthError, WhoopError
from common.whoop.oauth import TokenSet, new_state
from services.api.deps import ApiState, SessionDep, StateDep, UserDep
from services.api.errors import ApiError
from services.api.schemas import (
    NOT_CONNECTED,
    UNAUTHORIZED,
    VALIDATION,
    CallbackResponse,
    ConnectionResponse,
    ConnectResponse,
    DisconnectResponse,
    error_example,
)

log = structlog.get_logger()
router = APIRouter(prefix="/api/v1/whoop", tags=["whoop-connection"])
STATE_TTL = timedelta(minutes=10)
NOT_CONNECTED_MESSAGE = "No WHOOP account is connected for this user"


class FreshTokens:
    """The access token just handed out by the code exchange (nothing to refresh yet)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def access_token(self) -> str:
        """The new access token."""
        return self.token

    async def refresh(self, rejected: str) -> str:
        """A brand-new token that WHOOP refuses cannot be helped by a refresh."""
        raise WhoopAuthError("WHOOP rejected the newly issued access token")


@router.get(
    "/connect",
    response_model=ConnectResponse,
    responses={**UNAUTHORIZED},
    summary="Start connecting WHOOP: the authorize URL and its single-use state",
)
async def connect(state: StateDep, session: SessionDep, user_id: UserDep) -> ConnectResponse:
    """An 8-character state bound to the user, valid 10 minutes, and WHOOP's authorize URL."""
    value = new_state()
    await OAuthStateRepository(session).create(value, user_id, STATE_TTL)
    await session.commit()
    return ConnectResponse(authorization_url=state.oauth.authorization_url(value), state=value)


@router.get(
    "/callback",
    response_model=CallbackResponse,
    responses={
        400: error_example("invalid_state", "Unknown, used or expired state"),
        502: error_example("whoop_unavailable", "Could not read the WHOOP profile"),
        **VALIDATION,
    },
    summary="WHOOP's redirect: exchange the code, store the tokens, start the backfill",
)
async def callback(
    state: StateDep,
    session: SessionDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    oauth_state: Annotated[str | None, Query(alias="state", max_length=64)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> CallbackResponse:
    """No bearer: the single-use state names the user."""
    user_id = await OAuthStateRepository(session).consume(oauth_state) if oauth_state else None
    await session.commit()  # the state is spent whatever happens next
    if error:
        detail = f": {error_description}" if error_description else ""
        raise ApiError(400, "oauth_error", f"WHOOP answered error={error}{detail}")
    if user_id is None:
        raise ApiError(400, "invalid_state", "Unknown, used or expired state")
    if not code:
        raise ApiError(400, "invalid_request", "The callback carries no code")
    try:
        tokens = await state.oauth.exchange_code(code)
    except WhoopError as exc:
        raise ApiError(400, "exchange_failed", f"Code exchange failed: {exc.reason}") from None
    try:
        client = state.whoop.for_user(FreshTokens(tokens.access_token), Priority.INTERACTIVE)
        profile = await client.profile()
    except WhoopError as exc:
        raise ApiError(502, "whoop_unavailable", f"Profile read failed: {exc.reason}") from None
    await _store(state, session, user_id, int(profile.user_id), tokens)
    await _start_backfill(state, user_id)
    log.info("connection.created", user_id=str(user_id), whoop_user_id=profile.user_id)
    return CallbackResponse(status="connected", whoop_user_id=int(profile.user_id))


async def _store(
    state: ApiState, session: SessionDep, user_id: uuid.UUID, whoop_user_id: int, tokens: TokenSet
) -> None:
    await ConnectionRepository(session).save(
        user_id=user_id,
        whoop_user_id=whoop_user_id,
        access_token_enc=state.cipher.encrypt(tokens.access_token),
        refresh_token_enc=state.cipher.encrypt(tokens.refresh_token)
        if tokens.refresh_token
        else None,
        expires_at=tokens.expires_at,
        scopes=tokens.scope,
    )
    await session.commit()


async def _start_backfill(state: ApiState, user_id: uuid.UUID) -> None:
    try:
        await state.queue.enqueue("backfill_user", str(user_id))
    except QueueUnavailable as exc:  # the reconciliation sweep syncs a never-synced user anyway
        log.warning("backfill.enqueue_failed", user_id=str(user_id), error=type(exc).__name__)


@router.get(
    "/connection",
    response_model=ConnectionResponse,
    responses={**UNAUTHORIZED, **NOT_CONNECTED},
    summary="The state of the user's WHOOP connection",
)
async def connection(session: SessionDep, user_id: UserDep) -> ConnectionResponse:
    """connected, whoop_user_id, scopes and status (active | reauthorization_required | revoked)."""
    row = await ConnectionRepository(session).get(user_id)
    if row is None:
        raise ApiError(404, "not_connected", NOT_CONNECTED_MESSAGE)
    status = ConnectionStatus(row.status)
    return ConnectionResponse(
        connected=status is not ConnectionStatus.REVOKED,
        whoop_user_id=row.whoop_user_id,
        scopes=row.scopes.split(),
        status=status,
    )


@router.delete(
    "/connection",
    response_model=DisconnectResponse,
    responses={**UNAUTHORIZED, **NOT_CONNECTED, **VALIDATION},
    summary="Revoke access at WHOOP and forget the tokens; `purge` drops the cached data too",
)
async def disconnect(
    state: StateDep,
    session: SessionDep,
    user_id: UserDep,
    purge: Annotated[bool, Query(description="also delete cached records and sync log")] = False,
) -> DisconnectResponse:
    """Revoke at WHOOP (`DELETE /v2/user/access`), forget the tokens, optionally purge."""
    connections = ConnectionRepository(session)
    row = await connections.get(user_id)
    if row is None:
        raise ApiError(404, "not_connected", NOT_CONNECTED_MESSAGE)
    has_tokens = row.access_token_enc is not None
    await session.commit()  # no transaction stays open across the WHOOP call
    revoked = has_tokens and await _revoke_at_whoop(state, user_id)
    await connections.forget_tokens(user_id)
    if purge:
        for data_type in DataType:
            await RecordRepository(session, data_type).delete_all(user_id)
        await SyncLogRepository(session).delete_user(user_id)
    await session.commit()
    log.info("connection.revoked", user_id=str(user_id), at_whoop=revoked, purged=purge)
    return DisconnectResponse(status="revoked", revoked_at_whoop=revoked, purged=purge)


async def _revoke_at_whoop(state: ApiState, user_id: uuid.UUID) -> bool:
    try:
        await state.whoop.for_user(state.tokens(user_id), Priority.INTERACTIVE).revoke_access()
    except WhoopError as exc:
        log.warning("connection.revoke_failed", user_id=str(user_id), error=exc.reason)
        return False
    return True
