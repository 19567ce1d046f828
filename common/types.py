"""Small vocabulary shared by every layer: data types, triggers and outcomes."""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """The four WHOOP resources whoop-sync keeps."""

    RECOVERY = "recovery"
    SLEEP = "sleep"
    CYCLE = "cycle"
    WORKOUT = "workout"


class Trigger(StrEnum):
    """What started a sync attempt."""

    WEBHOOK = "webhook"
    READ = "read"
    FORCE_REFRESH = "force_refresh"
    RECONCILE = "reconcile"
    BACKFILL = "backfill"
    ADMIN = "admin"  # an operator's "sync now"


class SyncStatus(StrEnum):
    """Outcome of the latest sync attempt of one user and type."""

    SUCCESS = "success"
    FAILED = "failed"
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    NEVER_SYNCED = "never_synced"


class ConnectionStatus(StrEnum):
    """State of a user's WHOOP connection."""

    ACTIVE = "active"
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    REVOKED = "revoked"


class EventStatus(StrEnum):
    """Life of a recorded webhook event in the inbox."""

    PENDING = "pending"
    DONE = "done"
    IGNORED = "ignored"
    FAILED = "failed"


class UpsertResult(StrEnum):
    """What a guarded upsert did to one record."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
