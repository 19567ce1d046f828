"""`/api/v1/smart/changes` and `/api/v1/smart/events`: the user's changes after a cursor, paged or
live (SPEC §3.5). The table is the truth; wake-ups only say when to look again."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from common.db.models import Change
from common.db.repositories.changes import ChangeRepository, Page
from common.feed.cursor import MalformedCursor, decode, encode
from common.feed.lifecycle import USER_ERASED, event_name
from common.feed.notify import ChangeNotifier
from services.api.deps import SessionDep, StateDep, UserDep
from services.api.errors import ApiError, json_response
from services.api.examples import CHANGES, ok
from services.api.schemas import UNAUTHORIZED, Responses, error_example
from services.api.streams import holding

router = APIRouter(prefix="/api/v1/smart", tags=["change-feed"])

HEARTBEAT = 15.0
# A live reader reads at most this many changes at a time and sends them before reading more, so
# that what a connection holds stays bounded; a reader that stops reading is dropped after
# SEND_TIMEOUT instead of piling up.
PAGE = 100
SEND_TIMEOUT = 30.0


class ChangeItem(BaseModel):
    """One change: the record as the write left it, or null for a delete (whose `updated_at` is
    the deletion's time); a lifecycle change (`connection.created` …) has no data type and no id."""

    cursor: str
    data_type: Literal["recovery", "sleep", "cycle", "workout"] | None
    action: Literal[
        "upserted",
        "deleted",
        "connection.created",
        "connection.reauthorization_required",
        "connection.revoked",
        "backfill.completed",
        "user.erased",
    ]
    id: str | None
    updated_at: datetime
    record: dict[str, Any] | None
    changed_at: datetime


class ChangesResponse(BaseModel):
    """A page of changes, oldest first; pass `next_cursor` back for the next one."""

    changes: list[ChangeItem]
    next_cursor: str
    has_more: bool


EXPIRED: Responses = {
    410: error_example("cursor_expired", "The cursor is older than the retention window"),
}
MALFORMED: Responses = {422: error_example("validation_error", "cursor: not a cursor of this feed")}
TOO_MANY_STREAMS: Responses = {
    429: error_example("too_many_streams", "At most 5 event streams may be open at once")
}
EXPIRED_EVENT = orjson.dumps(
    {
        "status": "error",
        "error": {"code": "cursor_expired", "message": "Retention passed this stream; start again"},
    }
).decode()


def item(change: Change) -> dict[str, Any]:
    """A change as the feed shows it (the stored record JSON is spliced in as is)."""
    return {
        "cursor": encode(change.seq),
        "data_type": change.data_type,
        "action": change.action,
        "id": change.record_id,
        # A delete carries its tombstone's time; one numbered before deletes did, its own.
        "updated_at": change.updated_at or change.changed_at,
        "record": None if change.data is None else orjson.Fragment(change.data),
        "changed_at": change.changed_at,
    }


def _after(cursor: str | None, where: str) -> int | None:
    """The number a cursor reads after (None: from the oldest kept); 422 when malformed."""
    if cursor is None:
        return None
    try:
        return decode(cursor)
    except MalformedCursor as exc:
        raise ApiError(422, "validation_error", f"{where}: {exc}") from None


EXPIRED_MESSAGE = "The cursor is older than the retention window; start again"


def _page_of(page: Page) -> Page:
    """The page, unless retention had passed its cursor when it was read (410)."""
    if page.expired:
        raise ApiError(410, "cursor_expired", EXPIRED_MESSAGE)
    return page


@router.get(
    "/changes",
    response_model=None,
    responses={
        200: ok(ChangesResponse, "The user's changes after the cursor", CHANGES),
        **UNAUTHORIZED,
        **EXPIRED,
        **MALFORMED,
    },
    summary="The user's record changes after a cursor, oldest first",
)
async def changes(
    session: SessionDep,
    user_id: UserDep,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page; absent: the oldest kept")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many changes")] = 100,
) -> Response:
    """A page of the user's changes."""
    after = _after(cursor, "query.cursor")
    # One statement reads the horizon, the head and the page: the cursor is judged by the same
    # snapshot that yields the page, so a prune committing meanwhile means 410, never a gap.
    page = _page_of(await ChangeRepository(session).read_page(user_id, after, limit + 1))
    # Everything numbered up to the head is visible already (numbers are handed out in commit
    # order), so a page that ends short can hand out the head as the next cursor.
    rows = page.changes
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].seq if has_more else max(page.head, page.after)
    body = {"changes": [item(r) for r in rows], "next_cursor": encode(last), "has_more": has_more}
    return json_response(body)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id` the cursor, `event` e.g. `sleep.upserted`, "
            "`data` the change as in /changes; a comment every 15 s",
            "content": {"text/event-stream": {}},
        },
        **UNAUTHORIZED,
        **EXPIRED,
        **MALFORMED,
        **TOO_MANY_STREAMS,
    },
    summary="The user's record changes, live",
)
async def events(
    request: Request,
    state: StateDep,
    user_id: UserDep,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="resume after this cursor")
    ] = None,
) -> EventSourceResponse:
    """Changes as they are numbered; without Last-Event-ID, from now on."""
    resume = _after(last_event_id, "header.Last-Event-ID")
    async with state.lookups() as session:
        page = _page_of(await ChangeRepository(session).read_page(user_id, resume, 0))
    after = page.head if resume is None else resume
    notifier: ChangeNotifier = request.app.state.context.feed.notifier
    slot = await state.streams.admit(user_id)
    if slot is None:
        limit = state.settings.sse_max_per_user
        message = f"At most {limit} event streams may be open at once; close one first"
        raise ApiError(429, "too_many_streams", message)
    stream = _stream(state.lookups, notifier, user_id, after)
    admitted = holding(state.streams, user_id, slot, stream)
    return EventSourceResponse(admitted, ping=HEARTBEAT, send_timeout=SEND_TIMEOUT)


async def _stream(
    factory: async_sessionmaker[AsyncSession],
    notifier: ChangeNotifier,
    user_id: uuid.UUID,
    after: int,
) -> AsyncIterator[ServerSentEvent]:
    with notifier.subscribe(user_id) as woken:
        await notifier.ready()
        while True:
            woken.clear()  # before the look: a wake-up during it is kept for the wait
            async with factory() as session:
                page = await ChangeRepository(session).read_page(user_id, after, PAGE)
            if page.expired:  # a prune passed this reader: it must start again, not skip
                yield ServerSentEvent(data=EXPIRED_EVENT, event="cursor_expired")
                return
            rows = page.changes
            for row in rows:
                data = orjson.dumps(item(row)).decode()
                yield ServerSentEvent(data=data, id=encode(row.seq), event=event_name(row))
                after = row.seq
                if row.action == USER_ERASED:  # nothing of the user is left to stream
                    return
            if len(rows) < PAGE:
                # Nothing of this user's up to the head: a prune of others' changes up to there
                # leaves this reader with nothing missed.
                after = max(after, page.head)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HEARTBEAT):
                        await woken.wait()
