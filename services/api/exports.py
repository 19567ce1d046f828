"""The export's two formats (SPEC §3.5), produced page by page as the database yields them.

`jsonl`: one `{"data_type": …, "record": …}` a line, the stored WHOOP object spliced in as it is
kept. `csv`: a zip, written as it goes (the stdlib's `zipfile` writes to a stream that cannot seek,
with a data descriptor after each member), holding one file per type whose columns are the fields
of WHOOP's schema for that type, nested objects flattened to dotted names (`score.strain`,
`score.stage_summary.total_in_bed_time_milli`), and the whole object, as kept, in a last column.
Each chunk is at most one page of records, so what a download holds in memory stays flat however
many records the user has.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db.repositories.export import ExportRepository, Position
from common.types import DataType

PAGE = 500
RAW_COLUMN = "record"

_TIMED = ("start", "end", "timezone_offset")
_CHANGED = ("user_id", "created_at", "updated_at")
# The properties of WHOOP's v2 schemas (Cycle, Sleep, Recovery, WorkoutV2), in the document's
# order; a test checks them against WHOOP's OpenAPI document.
COLUMNS: dict[DataType, tuple[str, ...]] = {
    DataType.RECOVERY: (
        "cycle_id",
        "sleep_id",
        *_CHANGED,
        "score_state",
        *(
            f"score.{name}"
            for name in (
                "user_calibrating",
                "recovery_score",
                "resting_heart_rate",
                "hrv_rmssd_milli",
                "spo2_percentage",
                "skin_temp_celsius",
            )
        ),
    ),
    DataType.SLEEP: (
        "id",
        "cycle_id",
        "v1_id",
        *_CHANGED,
        *_TIMED,
        "nap",
        "score_state",
        *(
            f"score.stage_summary.{name}"
            for name in (
                "total_in_bed_time_milli",
                "total_awake_time_milli",
                "total_no_data_time_milli",
                "total_light_sleep_time_milli",
                "total_slow_wave_sleep_time_milli",
                "total_rem_sleep_time_milli",
                "sleep_cycle_count",
                "disturbance_count",
            )
        ),
        *(
            f"score.sleep_needed.{name}"
            for name in (
                "baseline_milli",
                "need_from_sleep_debt_milli",
                "need_from_recent_strain_milli",
                "need_from_recent_nap_milli",
            )
        ),
        "score.respiratory_rate",
        "score.sleep_performance_percentage",
        "score.sleep_consistency_percentage",
        "score.sleep_efficiency_percentage",
    ),
    DataType.CYCLE: (
        "id",
        *_CHANGED,
        *_TIMED,
        "score_state",
        "score.strain",
        "score.kilojoule",
        "score.average_heart_rate",
        "score.max_heart_rate",
    ),
    DataType.WORKOUT: (
        "id",
        "v1_id",
        *_CHANGED,
        *_TIMED,
        "sport_name",
        "score_state",
        "score.strain",
        "score.average_heart_rate",
        "score.max_heart_rate",
        "score.kilojoule",
        "score.percent_recorded",
        "score.distance_meter",
        "score.altitude_gain_meter",
        "score.altitude_change_meter",
        *(
            f"score.zone_durations.zone_{n}_milli"
            for n in ("zero", "one", "two", "three", "four", "five")
        ),
        "sport_id",
    ),
}


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A WHOOP object's fields by dotted path, nested objects walked into."""
    flat: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def cell(value: Any) -> str:
    """A field as CSV text: empty for null, JSON's spelling for booleans and numbers."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def csv_rows(data_type: DataType, records: list[str]) -> list[list[str]]:
    """The CSV rows of stored objects (JSON text): the schema's columns, then the object itself."""
    columns = COLUMNS[data_type]
    rows = []
    for text in records:
        flat = flatten(orjson.loads(text))
        rows.append([*(cell(flat.get(column)) for column in columns), text])
    return rows


async def pages(
    factory: async_sessionmaker[AsyncSession], user_id: uuid.UUID, data_type: DataType
) -> AsyncIterator[list[str]]:
    """The user's stored objects of a type, newest first, a page (one short session) at a time."""
    after: Position | None = None
    while True:
        async with factory() as session:
            records, after = await ExportRepository(session, data_type).page(user_id, after, PAGE)
        if records:
            yield records
        if len(records) < PAGE:
            return


async def jsonl(
    factory: async_sessionmaker[AsyncSession], user_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """Every record of every type, one JSON object a line."""
    for data_type in DataType:
        head = b'{"data_type":"' + data_type.value.encode() + b'","record":'
        async for records in pages(factory, user_id, data_type):
            yield b"".join(head + text.encode() + b"}\n" for text in records)


class _Chunks(io.RawIOBase):
    """A write-only stream that hands on what was written since the last `take()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


async def csv_zip(
    factory: async_sessionmaker[AsyncSession], user_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """A zip of `<type>.csv` files, one per type, streamed as its members are written."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for data_type in DataType:
            with archive.open(f"{data_type.value}.csv", "w") as member:
                member.write(_csv_text([[*COLUMNS[data_type], RAW_COLUMN]]))
                async for records in pages(factory, user_id, data_type):
                    member.write(_csv_text(csv_rows(data_type, records)))
                    yield sink.take()
            yield sink.take()
    yield sink.take()
