"""`/api/v1/admin`: the operators' API (SPEC §3.6), behind WHOOPSYNC_ADMIN_TOKEN.

Unset, every route answers 404 as if it did not exist. Set, the bearer must be that token
(compared in constant time); anything else is 401.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.config import Settings
from common.queue import QueueUnavailable
from common.sync.erase import NotConnected, erase_user, revoke_with
from common.sync.jobs.replay import replay_events, replay_pushes
from common.types import EventStatus
from services.api.admin_schemas import (
    EraseResponse,
    Overview,
    ReplayRequest,
    ReplayResponse,
    SyncStarted,
    UserPage,
)
from services.api.deps import SessionDep, StateDep
from services.api.errors import ApiError
from services.api.operators import overview, resolve_user, sync_now, user_page
from services.api.schemas import Responses, error_example

log = structlog.get_logger()
admin_bearer = HTTPBearer(auto_error=False, description="The operators' WHOOPSYNC_ADMIN_TOKEN")

UNAUTHORIZED: Responses = {
    401: error_example("unauthorized", "Missing or wrong admin token"),
    404: error_example("not_found", "No such endpoint (WHOOPSYNC_ADMIN_TOKEN is not set)"),
}
USER_ERRORS: Responses = {
    404: error_example("not_found", "No WHOOP connection or sync history for this user"),
    422: error_example("validation_error", "user_id: an app user UUID or whoop:N is expected"),
}
QUEUE_DOWN: Responses = {503: error_example("unavailable", "The job queue is unavailable")}
UserRef = Annotated[
    str,
    Path(
        description="An app user's UUID, or `whoop:N` for the user holding WHOOP account N",
        examples=["7c3e9a52-1f0b-4d3e-9b1a-2a5f8e6d4c10", "whoop:10129"],
    ),
]


def admin_enabled(settings: Settings) -> bytes | None:
    """The admin token's bytes, or None when the operators' routes are off."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        return None
    return token.get_secret_value().encode()


def token_matches(settings: Settings, given: str) -> bool:
    """Whether `given` is the admin token (constant time)."""
    expected = admin_enabled(settings)
    return expected is not None and hmac.compare_digest(given.encode(), expected)


async def require_admin(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
) -> None:
    """404 when the admin token is unset; 401 unless the bearer is that token."""
    if admin_enabled(state.settings) is None:
        raise ApiError(404, "not_found", "No such endpoint")
    if credentials is None or not token_matches(state.settings, credentials.credentials):
        raise ApiError(
            401, "unauthorized", "Missing or wrong admin token", {"WWW-Authenticate": "Bearer"}
        )


router = APIRouter(
    prefix="/api/v1/admin",
    tags=["operators"],
    dependencies=[Depends(require_admin)],
    responses={**UNAUTHORIZED},
)


@router.get("/overview", response_model=Overview, summary="What an operator checks first")
async def get_overview(state: StateDep, session: SessionDep) -> Overview:
    """The webhook channel (live, newest event, refusals in the last hour), the WHOOP budget (this
    minute and day, the day's forecast at the current rate and the users it carries), the inbox
    (pending, parked, failed, the oldest pending event's age), the pushes, and the audit misses and
    reconciliation failures of the last 24 hours."""
    return await overview(session, state.settings, state.whoop.limiter)


@router.get(
    "/users/{user_id}",
    response_model=UserPage,
    responses={**USER_ERRORS},
    summary="One user: connection, sync state, recent attempts and events",
)
async def get_user(session: SessionDep, user_id: UserRef) -> UserPage:
    """The user's connection with its backfill, the sync state per type, and the last 50 sync
    attempts and webhook events, newest first."""
    return await user_page(session, user_id)


@router.post(
    "/users/{user_id}/sync",
    response_model=SyncStarted,
    status_code=202,
    responses={**USER_ERRORS, **QUEUE_DOWN},
    summary="Sync every type of a user now (background priority)",
)
async def post_sync(state: StateDep, session: SessionDep, user_id: UserRef) -> SyncStarted:
    """Queues a sync of each type over the reconciliation window, at background priority: reads
    keep their share of the WHOOP budget. The attempts show up on the user's page."""
    try:
        resolved, types = await sync_now(session, state.queue, user_id)
    except (QueueUnavailable, ValueError) as exc:
        log.warning("admin.sync_not_queued", error=str(exc))
        raise ApiError(503, "unavailable", "The job queue is unavailable") from None
    log.info("admin.sync_queued", user_id=str(resolved))
    return SyncStarted(status="queued", user_id=resolved, types=types)


async def replay(state: StateDep, session: SessionDep, request: ReplayRequest) -> ReplayResponse:
    """Reopen and hand on what the request names (the replay commands' own implementation)."""
    await session.close()
    reopened = enqueued = users = 0
    if request.events is not None:
        parked = request.events == "parked"
        reopened, enqueued = await replay_events(
            state.session_factory,
            state.queue,
            status=None if parked else EventStatus.FAILED,
            parked=parked,
        )
    if request.pushes is not None:
        try:
            users = await replay_pushes(state.session_factory, state.queue, status="failed")
        except QueueUnavailable:  # the push cron restarts the reopened queues
            log.warning("admin.push_replay_not_queued")
    log.info("admin.replayed", events=reopened, enqueued=enqueued, push_users=users)
    return ReplayResponse(events_reopened=reopened, events_enqueued=enqueued, push_users=users)


@router.post(
    "/replay",
    response_model=ReplayResponse,
    responses={422: error_example("validation_error", "body.events: Input should be 'failed'")},
    summary="Send failed or parked events, and failed pushes, again",
)
async def post_replay(
    state: StateDep, session: SessionDep, request: ReplayRequest
) -> ReplayResponse:
    """`{"events": "failed" | "parked", "pushes": "failed"}`, either or both: the events are
    reopened with a fresh set of tries and queued; the pushes become pending with a fresh day of
    retries and go out again in order per user."""
    if request.events is None and request.pushes is None:
        raise ApiError(422, "validation_error", "name events, pushes or both")
    return await replay(state, session, request)


@router.delete(
    "/users/{user_id}",
    response_model=EraseResponse,
    responses={**USER_ERRORS},
    summary="Revoke at WHOOP and erase every copy of the user's WHOOP data",
)
async def delete_user(state: StateDep, session: SessionDep, user_id: UserRef) -> EraseResponse:
    """The erase of SPEC 3.5: revoke at WHOOP, then delete the user's records, sync state and
    history, event payloads, changes and undelivered pushes in one transaction, leaving one
    `user.erased` change; the answer is the receipt."""
    target = await resolve_user(session, user_id)
    try:
        receipt = await erase_user(session, target, revoke=revoke_with(state.whoop, state.tokens))
    except NotConnected:
        raise ApiError(404, "not_found", f"No WHOOP connection for user {target}") from None
    await session.commit()
    log.info("admin.erased", user_id=str(target), revoked_at_whoop=receipt.revoked_at_whoop)
    return EraseResponse(**receipt.as_dict())
