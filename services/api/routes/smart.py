"""`/api/v1/smart`: the four cached reads and the sync status, in the guide's formats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator
from starlette.responses import Response

from common.db.models import SyncLog
from common.db.repositories import ChannelRepository, ConnectionRepository, SyncLogRepository
from common.db.repositories.channel import user_held_back
from common.db.types import utcnow
from common.sync.freshness import WEBHOOK_TYPES, channel_view
from common.types import ConnectionStatus, DataType, SyncStatus
from services.api.deps import SessionDep, StateDep, UserDep
from services.api.errors import ApiError, json_response
from services.api.reads import ReadQuery, age_of
from services.api.schemas import (
    NOT_CONNECTED,
    SMART_EXAMPLES,
    UNAUTHORIZED,
    VALIDATION,
    SmartResponse,
    SyncStatusResponse,
    error_example,
)

router = APIRouter(prefix="/api/v1/smart", tags=["smart-sync"])


def _utc(value: datetime | None) -> datetime | None:
    """The moment in UTC; a time without an offset is UTC, like every time whoop-sync speaks of.
    One that has no UTC equivalent (`0001-01-01T00:00:00+01:00`) is out of range: 422."""
    if value is None:
        return None
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once taken to UTC") from None


Moment = Annotated[datetime | None, AfterValidator(_utc)]
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SmartResponse,
        "description": "Records newest first; `metadata.source` says where they came from",
        "content": {"application/json": {"examples": SMART_EXAMPLES}},
    },
    **UNAUTHORIZED,
    **NOT_CONNECTED,
    **VALIDATION,
    429: error_example(
        "rate_limited",
        "Nothing is cached yet: The refresh limit of this user was reached; retry in 42s",
    ),
    502: error_example(
        "whoop_unavailable",
        "WHOOP sync failed and nothing is cached: Connection timeout from WHOOP API",
    ),
}


def _read_route(data_type: DataType) -> None:
    async def read(
        state: StateDep,
        user_id: UserDep,
        force_refresh: Annotated[bool, Query(description="skip the cache check")] = False,
        limit: Annotated[int, Query(ge=1, le=100, description="at most this many records")] = 30,
        start: Annotated[
            Moment, Query(description="inclusive, ISO 8601 (UTC when it has no offset)")
        ] = None,
        end: Annotated[
            Moment, Query(description="exclusive, ISO 8601 (UTC when it has no offset)")
        ] = None,
    ) -> Response:
        if start is not None and end is not None and start >= end:
            raise ApiError(422, "validation_error", "query.start: must be before end")
        query = ReadQuery(data_type, limit, start, end, force_refresh)
        answer = await state.reader.read(user_id, query)
        return Response(
            answer.body, answer.status_code, answer.headers, media_type="application/json"
        )

    time_field = "created_at" if data_type is DataType.RECOVERY else "start"
    router.add_api_route(
        f"/{data_type.value}",
        read,
        methods=["GET"],
        name=f"read_{data_type.value}",
        summary=f"{data_type.value.capitalize()} records, from the cache when fresh enough",
        description=(
            f"Newest first by `{time_field}`; `start` inclusive, `end` exclusive. Served from the "
            f"cache while the last successful sync is younger than the {data_type.value} threshold, "
            "else synced from WHOOP first (also with `force_refresh`); stale cache if WHOOP fails."
        ),
        response_model=None,
        responses=READ_RESPONSES,
    )


for _type in DataType:
    _read_route(_type)


@router.get(
    "/sync-status",
    response_model=None,
    responses={
        200: {"model": SyncStatusResponse, "description": "The sync state of every data type"},
        **UNAUTHORIZED,
        **NOT_CONNECTED,
    },
    summary="Last sync, outcome and freshness of every data type",
)
async def sync_status(state: StateDep, session: SessionDep, user_id: UserDep) -> Response:
    """The guide's sync-status answer."""
    connection = await ConnectionRepository(session).get(user_id)
    if connection is None or connection.status == ConnectionStatus.REVOKED.value:
        raise ApiError(404, "not_connected", "No WHOOP account is connected for this user")
    logs = await SyncLogRepository(session).for_user(user_id)
    now = utcnow()
    settings = state.settings
    channel = channel_view(settings, await ChannelRepository(session).read(), now)
    open_events = (
        await ChannelRepository(session).open_events(connection.whoop_user_id)
        if channel.live
        else []
    )
    reauth = connection.status == ConnectionStatus.REAUTHORIZATION_REQUIRED.value
    backfill_due = connection.backfill_pending_since is not None
    entries = {}
    for data_type in DataType:
        entry = logs.get(data_type)
        by_channel = None
        if channel.live and data_type in WEBHOOK_TYPES and entry is not None:
            held = user_held_back(open_events, entry.sync_status, backfill_due, connection.status)
            by_channel = None if held else channel.last_event_at
        entries[data_type.value] = _type_status(
            entry, settings.threshold_seconds(data_type), reauth, now, by_channel
        )
    body = {
        "user_id": str(user_id),
        "sync_status": entries,
        "check_timestamp": now,
        "webhook_channel": {"live": channel.live, "last_event_at": channel.last_event_at},
    }
    return json_response(body)


def _type_status(
    entry: SyncLog | None,
    threshold: int,
    reauth: bool,
    now: datetime,
    by_channel: datetime | None = None,
) -> dict[str, Any]:
    """One type's entry: `last_sync_at` is the last confirmation, `sync_status` the latest outcome."""
    last = entry.last_sync_at if entry else None
    confirmed_by = None if last is None else "sync"
    if by_channel is not None and (last is None or by_channel > last):
        last, confirmed_by = by_channel, "webhooks"
    seconds, hours = age_of(last, now) if last else (None, None)
    status = SyncStatus(entry.sync_status) if entry else SyncStatus.NEVER_SYNCED
    error = entry.error_message if entry else None
    if reauth:  # the connection itself is broken: every type waits for the user to reconnect
        status = SyncStatus.REAUTHORIZATION_REQUIRED
        error = error or "WHOOP authorization expired; reconnect required"
    return {
        "last_sync_at": last,
        "sync_status": status.value,
        "records_synced": entry.records_synced if entry else 0,
        "time_since_sync_seconds": seconds,
        "time_since_sync_hours": hours,
        "threshold_seconds": threshold,
        "threshold_hours": round(threshold / 3600, 2),
        "needs_sync": seconds is None or seconds >= threshold,
        "error_message": error,
        "confirmed_by": confirmed_by,
        "last_fetch_at": entry.last_fetch_at if entry else None,
    }
