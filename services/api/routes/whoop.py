"""`/api/v1/whoop`: connecting a WHOOP account (SPEC §3.2), its state, and disconnecting it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from sqlalchemy.exc import IntegrityError

from common.db.repositories import ConnectionRepository, OAuthStateRepository
from common.db.types import utcnow
from common.feed.lifecycle import CONNECTION_REVOKED, record_lifecycle
from common.queue import QueueUnavailable
from common.ratelimit import Priority
from common.sync.accounts import AccountLinked, EncryptedTokens, link_account
from common.sync.backfill import backfill_view
from common.sync.erase import NotConnected, erase_user, revoke_with
from common.types import ConnectionStatus
from common.whoop.errors import WhoopAuthError, WhoopError
from common.whoop.oauth import TokenSet, new_state
from services.api.deps import ApiState, SessionDep, StateDep, UserDep
from services.api.errors import ApiError
from services.api.examples import CONNECTION, ok
from services.api.schemas import (
    NOT_CONNECTED,
    UNAUTHORIZED,
    VALIDATION,
    BackfillState,
    CallbackRequest,
    CallbackResponse,
    ConnectionResponse,
    ConnectResponse,
    DisconnectResponse,
    Responses,
    error_example,
)

log = structlog.get_logger()
router = APIRouter(prefix="/api/v1/whoop", tags=["whoop-connection"])
STATE_TTL = timedelta(minutes=10)
OPEN_STATES_PER_USER = 10  # a new connect flow drops the user's oldest open state beyond this
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
    """An 8-character state bound to the user, valid 10 minutes, and WHOOP's authorize URL; the
    user's oldest open states beyond the newest ten are dropped."""
    value = new_state()
    await OAuthStateRepository(session).create(
        value, user_id, STATE_TTL, keep_open=OPEN_STATES_PER_USER
    )
    await session.commit()
    return ConnectResponse(authorization_url=state.oauth.authorization_url(value), state=value)


CALLBACK_ERRORS: Responses = {
    400: error_example("invalid_state", "Unknown, used or expired state"),
    409: error_example(
        "whoop_account_linked", "This WHOOP account is linked to another user of this app"
    ),
    502: error_example("whoop_unavailable", "Could not read the WHOOP profile"),
}
LINKED_MESSAGE = (
    "This WHOOP account is linked to another user of this app; to move it, link it with "
    "POST /api/v1/whoop/callback while signed in as the user who started the connect flow"
)


@router.get(
    "/callback",
    response_model=CallbackResponse,
    responses={**CALLBACK_ERRORS, **VALIDATION},
    summary="WHOOP's redirect: exchange the code, store the tokens, start the backfill",
    description=(
        "No bearer: the single-use `state` names the user. It never moves a WHOOP account that "
        "another user's connection holds (409 `whoop_account_linked`, nothing changed). Prefer "
        "`POST /api/v1/whoop/callback`, which proves who is linking."
    ),
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
    return await _link(state, session, user_id, code, may_move=False)


@router.post(
    "/callback",
    response_model=CallbackResponse,
    responses={
        **UNAUTHORIZED,
        400: error_example("invalid_state", "Unknown, used or expired state"),
        403: error_example("state_mismatch", "The state was issued to another user"),
        409: CALLBACK_ERRORS[409],
        502: error_example("whoop_unavailable", "Could not read the WHOOP profile"),
        **VALIDATION,
    },
    summary="Link WHOOP with the code the app received: the bearer proves whose state it is",
    description=(
        "For an app whose redirect URI is its own (a deep link) and which hands the code on. The "
        "state must have been issued to the bearer's user (403 `state_mismatch` otherwise, "
        "nothing linked), so an authorization link one user sent another can never bind the "
        "other's WHOOP account. A WHOOP account another user holds moves to the bearer's user: "
        "the old connection ends and the cached records, sync state and history move with it."
    ),
)
async def callback_with_bearer(
    body: CallbackRequest, state: StateDep, session: SessionDep, user_id: UserDep
) -> CallbackResponse:
    """The GET callback's work, for the bearer's own state only."""
    owner = await OAuthStateRepository(session).consume(body.state)
    await session.commit()  # spent whatever happens next, by whomever it was presented
    if owner is None:
        raise ApiError(400, "invalid_state", "Unknown, used or expired state")
    if owner != user_id:
        log.warning("connection.state_mismatch", user_id=str(user_id))
        raise ApiError(403, "state_mismatch", "The state was issued to another user")
    return await _link(state, session, user_id, body.code, may_move=True)


async def _link(
    state: ApiState, session: SessionDep, user_id: uuid.UUID, code: str, *, may_move: bool
) -> CallbackResponse:
    try:
        tokens = await state.oauth.exchange_code(code)
    except WhoopError as exc:
        raise ApiError(400, "exchange_failed", f"Code exchange failed: {exc.reason}") from None
    try:
        client = state.whoop.for_user(FreshTokens(tokens.access_token), Priority.INTERACTIVE)
        profile = await client.profile()
    except WhoopError as exc:
        raise ApiError(502, "whoop_unavailable", f"Profile read failed: {exc.reason}") from None
    whoop_user_id = int(profile.user_id)
    try:
        moved_from = await link_account(
            session, user_id, whoop_user_id, _encrypted(state, tokens), may_move=may_move
        )
        await session.commit()
    except (AccountLinked, IntegrityError):  # held, or linked by a concurrent callback
        await session.rollback()
        log.warning("connection.link_refused", user_id=str(user_id), whoop_user_id=whoop_user_id)
        raise ApiError(409, "whoop_account_linked", LINKED_MESSAGE) from None
    await _start_backfill(state, user_id)
    log.info(
        "connection.created",
        user_id=str(user_id),
        whoop_user_id=whoop_user_id,
        moved_from=str(moved_from) if moved_from else None,
    )
    return CallbackResponse(status="connected", whoop_user_id=whoop_user_id)


def _encrypted(state: ApiState, tokens: TokenSet) -> EncryptedTokens:
    return EncryptedTokens(
        access_token_enc=state.cipher.encrypt(tokens.access_token),
        refresh_token_enc=state.cipher.encrypt(tokens.refresh_token)
        if tokens.refresh_token
        else None,
        expires_at=tokens.expires_at,
        scopes=tokens.scope,
    )


async def _start_backfill(state: ApiState, user_id: uuid.UUID) -> None:
    try:
        await state.queue.enqueue("backfill_user", str(user_id))
    except QueueUnavailable as exc:  # the reconciliation sweep syncs a never-synced user anyway
        log.warning("backfill.enqueue_failed", user_id=str(user_id), error=type(exc).__name__)


@router.get(
    "/connection",
    response_model=ConnectionResponse,
    responses={
        200: ok(None, "The user's WHOOP connection", CONNECTION),
        **UNAUTHORIZED,
        **NOT_CONNECTED,
    },
    summary="The state of the user's WHOOP connection",
)
async def connection(session: SessionDep, user_id: UserDep) -> ConnectionResponse:
    """connected, whoop_user_id, scopes, status (active | reauthorization_required | revoked)
    and the backfill's progress."""
    row = await ConnectionRepository(session).get(user_id)
    if row is None:
        raise ApiError(404, "not_connected", NOT_CONNECTED_MESSAGE)
    status = ConnectionStatus(row.status)
    return ConnectionResponse(
        connected=status is not ConnectionStatus.REVOKED,
        whoop_user_id=row.whoop_user_id,
        scopes=row.scopes.split(),
        status=status,
        backfill=BackfillState(**backfill_view(row)),
    )


@router.delete(
    "/connection",
    response_model=DisconnectResponse,
    response_model_exclude_none=True,
    responses={**UNAUTHORIZED, **NOT_CONNECTED, **VALIDATION},
    summary="Revoke access at WHOOP and forget the tokens; `purge` drops the cached data too",
)
async def disconnect(
    state: StateDep,
    session: SessionDep,
    user_id: UserDep,
    purge: Annotated[
        bool, Query(description="erase the user: every copy of their WHOOP data (SPEC 3.5)")
    ] = False,
) -> DisconnectResponse:
    """Revoke at WHOOP (`DELETE /v2/user/access`) and forget the tokens; with `purge`, erase the
    user and answer the receipt."""
    if purge:
        try:
            receipt = await erase_user(
                session, user_id, revoke=revoke_with(state.whoop, state.tokens)
            )
        except NotConnected:
            raise ApiError(404, "not_connected", NOT_CONNECTED_MESSAGE) from None
        await session.commit()
        return DisconnectResponse(
            status="revoked",
            revoked_at_whoop=receipt.revoked_at_whoop,
            purged=True,
            receipt=receipt.as_dict(),
        )
    connections = ConnectionRepository(session)
    row = await connections.get(user_id)
    if row is None:
        raise ApiError(404, "not_connected", NOT_CONNECTED_MESSAGE)
    has_tokens, was = row.access_token_enc is not None, row.status
    await session.commit()  # no transaction stays open across the WHOOP call
    revoked = has_tokens and await _revoke_at_whoop(state, user_id)
    await connections.forget_tokens(user_id)
    if was != ConnectionStatus.REVOKED.value:
        await record_lifecycle(
            session,
            user_id=user_id,
            whoop_user_id=row.whoop_user_id,
            action=CONNECTION_REVOKED,
            at=utcnow(),
        )
    await session.commit()
    log.info("connection.revoked", user_id=str(user_id), at_whoop=revoked, purged=False)
    return DisconnectResponse(status="revoked", revoked_at_whoop=revoked, purged=False)


async def _revoke_at_whoop(state: ApiState, user_id: uuid.UUID) -> bool:
    return await revoke_with(state.whoop, state.tokens)(user_id)
