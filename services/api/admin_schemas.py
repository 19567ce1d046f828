"""The operators' answers (SPEC §3.6) as OpenAPI models with examples; the console renders the
same objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas import BackfillState

AT = "2026-12-07T08:15:00+00:00"


def _example(value: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"example": value})


class ChannelBlock(BaseModel):
    """The webhook channel: live (confirms freshness), its newest receipt, its refusals."""

    live: bool
    last_event_at: datetime | None
    suspended: bool = Field(description="an audit miss suspended webhook confirmation")
    refusals_last_hour: int = Field(description="events the receiver answered 503 in the hour")
    last_refused_at: datetime | None


class BudgetBlock(BaseModel):
    """The app-wide WHOOP budget: this minute, this day, and the day's forecast."""

    minute_used: int
    minute_limit: int
    minute_left: int
    day_used: int
    day_limit: int
    day_left: int
    day_forecast: int = Field(description="the day's calls at the current rate")
    users_connected: int
    users_carried: int = Field(description="connected users the day's budget carries at that rate")


class InboxBlock(BaseModel):
    """Webhook events not done: waiting, parked (retries ran out for a passing reason), failed."""

    pending: int
    parked: int
    failed: int
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float | None


class PushBlock(BaseModel):
    """Pushes to the app's backend: waiting, given up on, the oldest waiting."""

    pending: int
    failed: int
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float | None


class Overview(BaseModel):
    """Everything an operator checks first."""

    model_config = _example(
        {
            "generated_at": AT,
            "webhook_channel": {
                "live": True,
                "last_event_at": "2026-12-07T08:14:52+00:00",
                "suspended": False,
                "refusals_last_hour": 0,
                "last_refused_at": None,
            },
            "whoop_budget": {
                "minute_used": 12,
                "minute_limit": 100,
                "minute_left": 88,
                "day_used": 2140,
                "day_limit": 10000,
                "day_left": 7860,
                "day_forecast": 3900,
                "users_connected": 640,
                "users_carried": 1641,
            },
            "inbox": {
                "pending": 3,
                "parked": 0,
                "failed": 1,
                "oldest_pending_at": "2026-12-07T08:14:58+00:00",
                "oldest_pending_age_seconds": 2.0,
            },
            "pushes": {
                "pending": 0,
                "failed": 2,
                "oldest_pending_at": None,
                "oldest_pending_age_seconds": None,
            },
            "audit_misses_24h": 0,
            "reconcile_failures_24h": 1,
        }
    )

    generated_at: datetime
    webhook_channel: ChannelBlock
    whoop_budget: BudgetBlock
    inbox: InboxBlock
    pushes: PushBlock
    audit_misses_24h: int = Field(description="records an audit found that no webhook announced")
    reconcile_failures_24h: int = Field(description="users a reconciliation pass could not handle")


class ConnectionBlock(BaseModel):
    """A user's WHOOP connection."""

    whoop_user_id: int
    status: str
    scopes: list[str]
    created_at: datetime
    backfill: BackfillState


class TypeState(BaseModel):
    """The sync state of one type."""

    last_sync_at: datetime | None
    last_fetch_at: datetime | None
    last_attempt_at: datetime | None
    sync_status: str
    records_synced: int
    error_message: str | None


class AttemptRow(BaseModel):
    """One sync attempt."""

    data_type: str
    trigger: str
    outcome: str
    records: int
    duration_ms: int
    error: str | None
    started_at: datetime


class EventRow(BaseModel):
    """One recorded webhook event."""

    id: int
    trace_id: str
    event_type: str
    record_id: str
    status: str
    parked: bool
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None


class UserPage(BaseModel):
    """One user as an operator sees them."""

    model_config = _example(
        {
            "user_id": "7c3e9a52-1f0b-4d3e-9b1a-2a5f8e6d4c10",
            "connection": {
                "whoop_user_id": 10129,
                "status": "active",
                "scopes": ["offline", "read:recovery", "read:sleep"],
                "created_at": "2026-12-01T09:00:00+00:00",
                "backfill": {
                    "status": "done",
                    "days": 30,
                    "started_at": "2026-12-01T09:00:01+00:00",
                    "finished_at": "2026-12-01T09:00:09+00:00",
                    "records": {"recovery": 30, "sleep": 34, "cycle": 31, "workout": 12},
                    "error": None,
                },
            },
            "sync_state": {
                "sleep": {
                    "last_sync_at": AT,
                    "last_fetch_at": AT,
                    "last_attempt_at": AT,
                    "sync_status": "success",
                    "records_synced": 1,
                    "error_message": None,
                }
            },
            "attempts": [
                {
                    "data_type": "sleep",
                    "trigger": "webhook",
                    "outcome": "success",
                    "records": 1,
                    "duration_ms": 182,
                    "error": None,
                    "started_at": AT,
                }
            ],
            "events": [
                {
                    "id": 5521,
                    "trace_id": "d3c1f0e2-5b7a-4c1e-9f2d-3a4b5c6d7e8f",
                    "event_type": "sleep.updated",
                    "record_id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
                    "status": "done",
                    "parked": False,
                    "attempts": 1,
                    "last_error": None,
                    "received_at": AT,
                    "processed_at": "2026-12-07T08:15:00.412000+00:00",
                }
            ],
        }
    )

    user_id: uuid.UUID
    connection: ConnectionBlock | None
    sync_state: dict[str, TypeState]
    attempts: list[AttemptRow]
    events: list[EventRow]


class SyncStarted(BaseModel):
    """Every type of the user queued for a sync at background priority."""

    model_config = _example(
        {"status": "queued", "user_id": "7c3e9a52-1f0b-4d3e-9b1a-2a5f8e6d4c10", "types": ["cycle"]}
    )

    status: Literal["queued"]
    user_id: uuid.UUID
    types: list[str]


class ReplayRequest(BaseModel):
    """What to send again: failed or parked webhook events, failed pushes (either or both)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"events": "failed", "pushes": "failed"}}
    )

    events: Literal["failed", "parked"] | None = None
    pushes: Literal["failed"] | None = None


class ReplayResponse(BaseModel):
    """How many events were reopened and handed to the queue, and for how many users pushes go
    out again."""

    model_config = _example({"events_reopened": 3, "events_enqueued": 3, "push_users": 1})

    events_reopened: int
    events_enqueued: int
    push_users: int


class EraseResponse(BaseModel):
    """The receipt of an erase: what was deleted, counted by kind, and when."""

    model_config = _example(
        {
            "user_id": "7c3e9a52-1f0b-4d3e-9b1a-2a5f8e6d4c10",
            "whoop_user_id": 10129,
            "erased_at": "2026-12-07T10:00:00+00:00",
            "revoked_at_whoop": True,
            "deleted": {"sleep": 34, "recovery": 30, "cycle": 31, "workout": 12, "changes": 107},
        }
    )

    user_id: uuid.UUID
    whoop_user_id: int
    erased_at: datetime
    revoked_at_whoop: bool
    deleted: dict[str, Any]
