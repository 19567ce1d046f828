"""Values the sync service hands back, and the writes a fetch phase collects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.types import DataType, SyncStatus
from common.whoop.errors import WhoopError, WhoopReauthorizationRequired

# Write order: cycles first, so that every later record has its cycle cached.
ALL_TYPES = (DataType.CYCLE, DataType.SLEEP, DataType.RECOVERY, DataType.WORKOUT)


@dataclass(frozen=True)
class SyncResult:
    """Outcome of one collection sync; `error` is set (and `status` not success) when WHOOP failed."""

    data_type: DataType
    fetched: int
    written: int
    synced_at: datetime
    error: WhoopError | None = None
    status: SyncStatus = SyncStatus.SUCCESS
    # WHOOP's `updated_at` of each record the sync wrote (new, or newer than the cache).
    changed: tuple[datetime, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the sync succeeded."""
        return self.status is SyncStatus.SUCCESS


@dataclass
class Writes:
    """Records fetched and rows to remove, applied together after every fetch is done."""

    upserts: dict[DataType, list[Mapping[str, Any]]] = field(default_factory=dict)
    deletes: list[tuple[DataType, str, Any]] = field(default_factory=list)
    # Deletes found by a 404 rather than announced by WHOOP: no tombstone for an uncached record.
    unannounced: set[tuple[DataType, str, Any]] = field(default_factory=set)

    def upsert(self, data_type: DataType, obj: Mapping[str, Any]) -> None:
        """Keep an object to write."""
        self.upserts.setdefault(data_type, []).append(obj)

    def delete(
        self, data_type: DataType, column: str, value: Any, *, announced: bool = True
    ) -> None:
        """Keep a row to remove (by key or by another unique column); `announced` when WHOOP said
        it was deleted (a `*.deleted` event), not when a fetch only found it missing."""
        self.deletes.append((data_type, column, value))
        if not announced:
            self.unannounced.add((data_type, column, value))


def status_of(error: WhoopError) -> SyncStatus:
    """The sync status a WHOOP failure leaves behind."""
    if isinstance(error, WhoopReauthorizationRequired):
        return SyncStatus.REAUTHORIZATION_REQUIRED
    return SyncStatus.FAILED
