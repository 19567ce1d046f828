"""`GET /api/v1/smart/export`: every cached record of the user, all four types, streamed straight
from the database (SPEC §3.5)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from common.db.repositories import ConnectionRepository
from common.db.types import utcnow
from services.api import exports
from services.api.deps import StateDep, UserDep
from services.api.errors import ApiError
from services.api.schemas import NOT_CONNECTED, UNAUTHORIZED, error_example

router = APIRouter(prefix="/api/v1/smart", tags=["export"])

MEDIA = {"jsonl": "application/x-ndjson", "csv": "application/zip"}
SUFFIX = {"jsonl": "jsonl", "csv": "zip"}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": '`jsonl`: one `{"data_type", "record"}` a line; `csv`: a zip of '
            "`recovery.csv`, `sleep.csv`, `cycle.csv` and `workout.csv`, WHOOP's fields as "
            "columns (nested ones as `score.x`) and the whole object in the last column",
            "content": {"application/x-ndjson": {}, "application/zip": {}},
        },
        **UNAUTHORIZED,
        **NOT_CONNECTED,
        422: error_example("validation_error", "query.format: Input should be 'jsonl' or 'csv'"),
    },
    summary="Every cached record of the user, as a download",
)
async def export(
    state: StateDep,
    user_id: UserDep,
    fmt: Annotated[
        Literal["jsonl", "csv"],
        Query(alias="format", description="`jsonl`, or `csv` (a zip, one file a type)"),
    ] = "jsonl",
) -> StreamingResponse:
    """The user's records as WHOOP's objects, read a page at a time while they are sent."""
    async with state.session_factory() as session:
        connection = await ConnectionRepository(session).get(user_id)
    # A disconnected user (no purge) keeps the records for export; only one never linked has none.
    if connection is None:
        raise ApiError(404, "not_connected", "No WHOOP account is connected for this user")
    stream = (exports.jsonl if fmt == "jsonl" else exports.csv_zip)(state.session_factory, user_id)
    name = f"whoop-export-{utcnow():%Y%m%dT%H%M%SZ}.{SUFFIX[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(stream, media_type=MEDIA[fmt], headers=headers)
