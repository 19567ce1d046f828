"""The four cached WHOOP resources: how each maps onto its table, its key and its tombstones."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from common.db.models import (
    Cycle,
    CycleTombstone,
    Recovery,
    RecoveryTombstone,
    Sleep,
    SleepTombstone,
    Workout,
    WorkoutTombstone,
)
from common.db.models.records import RecordMixin
from common.db.models.tombstones import TombstoneMixin
from common.types import DataType

WhoopObject = Mapping[str, Any]


def parse_time(value: str | None) -> datetime | None:
    """A WHOOP timestamp (ISO 8601, `Z` or offset) as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value)


def _common(obj: WhoopObject) -> dict[str, Any]:
    return {
        "whoop_user_id": int(obj["user_id"]),
        "created_at": parse_time(obj["created_at"]),
        "updated_at": parse_time(obj["updated_at"]),
        "score_state": obj["score_state"],
    }


def _timed(obj: WhoopObject) -> dict[str, Any]:
    return {**_common(obj), "start": parse_time(obj["start"]), "end": parse_time(obj.get("end"))}


@dataclass(frozen=True)
class RecordKind:
    """How one WHOOP resource maps onto its table."""

    data_type: DataType
    model: type[RecordMixin]
    key: str
    time_column: str
    columns: Callable[[WhoopObject], dict[str, Any]]
    key_of: Callable[[WhoopObject], Any] = field(repr=False)
    tombstone: type[TombstoneMixin] = field(repr=False, default=CycleTombstone)
    # The record's column its tombstone is keyed by (a recovery's sleep, else the key itself).
    tombstone_key: str = "id"

    @property
    def table(self) -> Table:
        """The SQLAlchemy table behind the kind."""
        return self.model.__table__  # type: ignore[attr-defined,no-any-return]

    @property
    def tombstones(self) -> Table:
        """The table of this kind's deleted records."""
        return self.tombstone.__table__  # type: ignore[attr-defined,no-any-return]


KINDS: dict[DataType, RecordKind] = {
    DataType.CYCLE: RecordKind(
        DataType.CYCLE,
        Cycle,
        "id",
        "start",
        columns=lambda o: {"id": int(o["id"]), **_timed(o)},
        key_of=lambda o: int(o["id"]),
        tombstone=CycleTombstone,
    ),
    DataType.SLEEP: RecordKind(
        DataType.SLEEP,
        Sleep,
        "id",
        "start",
        columns=lambda o: {
            "id": uuid.UUID(o["id"]),
            "cycle_id": int(o["cycle_id"]),
            "nap": bool(o.get("nap", False)),
            **_timed(o),
        },
        key_of=lambda o: uuid.UUID(o["id"]),
        tombstone=SleepTombstone,
    ),
    DataType.WORKOUT: RecordKind(
        DataType.WORKOUT,
        Workout,
        "id",
        "start",
        columns=lambda o: {
            "id": uuid.UUID(o["id"]),
            "sport_name": o.get("sport_name"),
            **_timed(o),
        },
        key_of=lambda o: uuid.UUID(o["id"]),
        tombstone=WorkoutTombstone,
    ),
    DataType.RECOVERY: RecordKind(
        DataType.RECOVERY,
        Recovery,
        "cycle_id",
        "created_at",
        columns=lambda o: {
            "cycle_id": int(o["cycle_id"]),
            "sleep_id": uuid.UUID(o["sleep_id"]),
            **_common(o),
        },
        key_of=lambda o: int(o["cycle_id"]),
        tombstone=RecoveryTombstone,
        tombstone_key="sleep_id",
    ),
}


def record_key(data_type: DataType, obj: WhoopObject) -> Any:
    """The primary key of a WHOOP object in its table."""
    return KINDS[data_type].key_of(obj)
