"""Response shapes of the api, as the guide writes them, for the OpenAPI document.

Answers are rendered with orjson (timestamps as `2025-11-21T15:04:32.192399+00:00`, as in the guide);
these models describe them, and the tests validate real answers against the generated schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The error form, shared by every process's OpenAPI document; re-exported for the routes.
from common.http_schemas import ErrorDetail as ErrorDetail
from common.http_schemas import ErrorResponse as ErrorResponse
from common.http_schemas import error_example as error_example
from common.types import ConnectionStatus, SyncStatus

NOTE_CACHE = "✓ Using cached data (fresh enough)"
NOTE_API = "✓ Fresh data from WHOOP API"
WARNING_STALE = "Using stale cached data due to sync failure"

RECOVERY_EXAMPLE: dict[str, Any] = {
    "cycle_id": 93845,
    "sleep_id": "123e4567-e89b-12d3-a456-426614174000",
    "user_id": 10129,
    "created_at": "2022-04-24T11:25:44.774Z",
    "updated_at": "2022-04-24T14:25:44.774Z",
    "score_state": "SCORED",
    "score": {
        "user_calibrating": False,
        "recovery_score": 44.0,
        "resting_heart_rate": 64.0,
        "hrv_rmssd_milli": 31.813562,
        "spo2_percentage": 95.6875,
        "skin_temp_celsius": 33.7,
    },
}


class CacheMetadata(BaseModel):
    """The cache answered: the last successful sync is younger than the type's threshold."""

    source: Literal["cache"]
    record_count: int
    last_sync_at: datetime
    time_since_sync_seconds: int
    time_since_sync_hours: float
    threshold_seconds: int
    cached_enough: Literal[True]
    note: Literal["✓ Using cached data (fresh enough)"]


class WhoopApiMetadata(BaseModel):
    """WHOOP was asked (stale, never synced or force_refresh); the answer is read from the cache after the upsert."""

    source: Literal["whoop_api"]
    record_count: int
    synced_at: datetime
    note: Literal["✓ Fresh data from WHOOP API"]


class StaleCacheMetadata(BaseModel):
    """WHOOP failed; the cache answered with what it had."""

    source: Literal["stale_cache"]
    record_count: int
    warning: Literal["Using stale cached data due to sync failure"]
    error: str


class SmartResponse(BaseModel):
    """Records of one type, newest first, each the WHOOP v2 object as WHOOP returned it."""

    status: Literal["success", "success_with_warning"]
    data: list[dict[str, Any]]
    metadata: CacheMetadata | WhoopApiMetadata | StaleCacheMetadata = Field(discriminator="source")


SMART_EXAMPLES: dict[str, Any] = {
    "cache": {
        "summary": "Fresh enough: served from the cache",
        "value": {
            "status": "success",
            "data": [RECOVERY_EXAMPLE],
            "metadata": {
                "source": "cache",
                "record_count": 1,
                "last_sync_at": "2025-11-21T15:04:32.192399+00:00",
                "time_since_sync_seconds": 3600,
                "time_since_sync_hours": 1.0,
                "threshold_seconds": 7200,
                "cached_enough": True,
                "note": NOTE_CACHE,
            },
        },
    },
    "whoop_api": {
        "summary": "Stale, never synced or force_refresh: synced from WHOOP",
        "value": {
            "status": "success",
            "data": [RECOVERY_EXAMPLE],
            "metadata": {
                "source": "whoop_api",
                "record_count": 1,
                "synced_at": "2025-11-21T16:04:32.192399+00:00",
                "note": NOTE_API,
            },
        },
    },
    "stale_cache": {
        "summary": "WHOOP failed: stale cache with a warning",
        "value": {
            "status": "success_with_warning",
            "data": [RECOVERY_EXAMPLE],
            "metadata": {
                "source": "stale_cache",
                "record_count": 1,
                "warning": WARNING_STALE,
                "error": "Connection timeout from WHOOP API",
            },
        },
    },
}


class TypeSyncStatus(BaseModel):
    """The sync state of one data type."""

    last_sync_at: datetime | None
    sync_status: SyncStatus
    records_synced: int
    time_since_sync_seconds: int | None
    time_since_sync_hours: float | None
    threshold_seconds: int
    threshold_hours: float
    needs_sync: bool
    error_message: str | None
    confirmed_by: Literal["sync", "webhooks"] | None
    last_fetch_at: datetime | None


class WebhookChannel(BaseModel):
    """Whether the webhook channel confirms freshness now (SPEC 4.1), and its newest receipt."""

    live: bool
    last_event_at: datetime | None


class SyncStatusResponse(BaseModel):
    """The sync state of every data type of the user."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "a57f70b4-d0a4-4aef-b721-a4b526f64869",
                "sync_status": {
                    name: {
                        "last_sync_at": "2025-11-21T15:04:32.192399+00:00",
                        "sync_status": "success",
                        "records_synced": 1,
                        "time_since_sync_seconds": 3600,
                        "time_since_sync_hours": 1.0,
                        "threshold_seconds": threshold,
                        "threshold_hours": threshold / 3600,
                        "needs_sync": threshold <= 3600,
                        "error_message": None,
                        "confirmed_by": "sync",
                        "last_fetch_at": "2025-11-21T15:04:32.192399+00:00",
                    }
                    for name, threshold in (
                        ("recovery", 7200),
                        ("sleep", 7200),
                        ("cycle", 7200),
                        ("workout", 3600),
                    )
                },
                "check_timestamp": "2025-11-21T16:04:32.192399+00:00",
                "webhook_channel": {
                    "live": True,
                    "last_event_at": "2025-11-21T16:01:10.004211+00:00",
                },
            }
        }
    )

    user_id: str
    sync_status: dict[str, TypeSyncStatus]
    check_timestamp: datetime
    webhook_channel: WebhookChannel


class ConnectResponse(BaseModel):
    """Where to send the user to authorize WHOOP, and the state that comes back."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "authorization_url": "https://api.prod.whoop.com/oauth/oauth2/auth?client_id=abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Fapi%2Fv1%2Fwhoop%2Fcallback&response_type=code&scope=read%3Arecovery%20read%3Acycles%20read%3Aworkout%20read%3Asleep%20read%3Aprofile%20read%3Abody_measurement%20offline&state=Xk3b9QaZ",
                "state": "Xk3b9QaZ",
            }
        }
    )

    authorization_url: str = Field(
        examples=[
            "https://api.prod.whoop.com/oauth/oauth2/auth?client_id=abc&redirect_uri=https%3A%2F%2F"
            "app.example.com%2Fapi%2Fv1%2Fwhoop%2Fcallback&response_type=code&scope=read%3Arecovery"
            "+offline&state=Xk3b9QaZ"
        ]
    )
    state: str = Field(examples=["Xk3b9QaZ"], min_length=8, max_length=8)


class CallbackRequest(BaseModel):
    """The code and state the app received on its own redirect URI, handed on with the bearer."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"code": "5Hk2-the-code-from-whoop", "state": "x7Qm2ZpA"}}
    )

    code: str = Field(min_length=1, max_length=2048, description="WHOOP's authorization code")
    state: str = Field(min_length=1, max_length=64, description="the state of `/connect`")


class CallbackResponse(BaseModel):
    """The WHOOP account is connected; the backfill has started."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"status": "connected", "whoop_user_id": 10129}}
    )

    status: Literal["connected"]
    whoop_user_id: int = Field(examples=[10129])


class BackfillState(BaseModel):
    """The backfill of the linked account: its status and the records written per type so far."""

    status: Literal["pending", "running", "done", "failed"]
    days: int
    started_at: datetime | None
    finished_at: datetime | None
    records: dict[str, int]
    error: str | None


class ConnectionResponse(BaseModel):
    """The state of the user's WHOOP connection."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "connected": True,
                "whoop_user_id": 10129,
                "scopes": ["read:recovery", "read:sleep", "offline"],
                "status": "active",
                "backfill": {
                    "status": "running",
                    "days": 30,
                    "started_at": "2026-12-07T08:00:00Z",
                    "finished_at": None,
                    "records": {"recovery": 0, "sleep": 25, "cycle": 30, "workout": 0},
                    "error": None,
                },
            }
        }
    )

    connected: bool = Field(examples=[True])
    whoop_user_id: int = Field(examples=[10129])
    scopes: list[str] = Field(examples=[["read:recovery", "read:sleep", "offline"]])
    status: ConnectionStatus = Field(examples=["active"])
    backfill: BackfillState


class DisconnectResponse(BaseModel):
    """The connection is revoked; `purged` says whether the cached data went too."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"status": "revoked", "revoked_at_whoop": True, "purged": False}
        }
    )

    status: Literal["revoked"]
    revoked_at_whoop: bool = Field(examples=[True])
    purged: bool = Field(examples=[False])
    # With `purge`: the erase's receipt (what was deleted, counted by kind, and when).
    receipt: dict[str, Any] | None = None


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: error_example("unauthorized", "Missing or invalid bearer token")}
VALIDATION: Responses = {422: error_example("validation_error", "query.limit: must be at most 100")}
NOT_CONNECTED: Responses = {404: error_example("not_connected", "No WHOOP account is connected")}
