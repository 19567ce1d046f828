"""GET /api/v1/smart/export on both backends: exactly the user's cached records (the read API's,
page by page), the zip of CSV files with WHOOP's fields as columns, and the error answers."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from common.db.repositories import ConnectionRepository, RecordRepository
from common.types import DataType
from services.api import exports
from tests.common.db import samples
from tests.services.api.conftest import (
    auth,
    connect_user,
    each_backend,
    mark_synced,
    state_of,
)
from tests.whoop_openapi import load_document

T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
TIME_FIELD = {
    DataType.RECOVERY: "created_at",
    DataType.SLEEP: "start",
    DataType.CYCLE: "start",
    DataType.WORKOUT: "start",
}


settings = each_backend()


@pytest.fixture
def app(app: FastAPI, empty_database: None) -> FastAPI:
    """The api on a database emptied before and after the test (exports read every row)."""
    return app


def records_of(whoop_user: int, count: int, first_cycle: int) -> dict[DataType, list[Any]]:
    """`count` records of each type, an hour apart going back from T0 (distinct times)."""
    made: dict[DataType, list[Any]] = {t: [] for t in DataType}
    for i in range(count):
        moment = T0 - timedelta(hours=i)
        cycle_id = first_cycle + i
        sleep = samples.sleep(start=moment, cycle_id=cycle_id, whoop_user_id=whoop_user)
        made[DataType.SLEEP].append(sleep)
        made[DataType.CYCLE].append(
            samples.cycle(cycle_id=cycle_id, start=moment, whoop_user_id=whoop_user)
        )
        made[DataType.RECOVERY].append(
            samples.recovery(
                cycle_id=cycle_id,
                sleep_id=uuid.UUID(sleep["id"]),
                created_at=moment,
                whoop_user_id=whoop_user,
            )
        )
        made[DataType.WORKOUT].append(samples.workout(start=moment, whoop_user_id=whoop_user))
    return made


async def seed_user(
    app: FastAPI, count: int, first_cycle: int
) -> tuple[uuid.UUID, dict[DataType, list[Any]]]:
    """A connected user with `count` cached records of each type, synced a minute ago."""
    user, whoop_user = await connect_user(app)
    made = records_of(whoop_user, count, first_cycle)
    async with state_of(app).session_factory() as session:
        for data_type, objs in made.items():
            await RecordRepository(session, data_type).upsert(user, objs)
        await session.commit()
    for data_type in DataType:
        await mark_synced(app, user, data_type, timedelta(minutes=1))
    return user, made


async def read_api(
    client: httpx.AsyncClient, user: uuid.UUID, data_type: DataType
) -> list[dict[str, Any]]:
    """Every cached record of a type through the read API, 100 a page, each page ending where
    the last one's oldest record began (`end` is exclusive)."""
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        answer = await client.get(
            f"/api/v1/smart/{data_type.value}", params=params, headers=auth(user)
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["metadata"]["source"] == "cache"
        seen += body["data"]
        if len(body["data"]) < 100:
            return seen
        params["end"] = body["data"][-1][TIME_FIELD[data_type]]


def jsonl_lines(answer: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in answer.content.splitlines()]


async def test_jsonl_is_exactly_the_users_cached_records_as_the_read_api_pages_them(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PAGE", 17)  # the export itself reads many pages
    user, made = await seed_user(app, 130, first_cycle=1_000_000)
    other, _ = await seed_user(app, 5, first_cycle=2_000_000)

    answer = await client.get(
        "/api/v1/smart/export", params={"format": "jsonl"}, headers=auth(user)
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="whoop-export-')
    assert disposition.endswith('.jsonl"')
    lines = jsonl_lines(answer)
    assert all(set(line) == {"data_type", "record"} for line in lines)
    assert [line["data_type"] for line in lines] == [t.value for t in DataType for _ in range(130)]
    for data_type in DataType:
        exported = [line["record"] for line in lines if line["data_type"] == data_type.value]
        assert exported == await read_api(client, user, data_type)
        assert sorted(orjson.dumps(r) for r in exported) == sorted(
            orjson.dumps(r) for r in made[data_type]
        )
    others = jsonl_lines(await client.get("/api/v1/smart/export", headers=auth(other)))
    assert len(others) == 20  # the default format is jsonl; the other user's five of each type


async def test_csv_is_a_zip_of_one_file_per_type_with_whoops_fields_as_columns(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, made = await seed_user(app, 3, first_cycle=3_000_000)
    pending = samples.sleep(
        start=T0 + timedelta(days=1), score_state="PENDING_SCORE", whoop_user_id=1
    )
    async with state_of(app).session_factory() as session:
        await RecordRepository(session, DataType.SLEEP).upsert(user, [pending])
        await session.commit()

    answer = await client.get("/api/v1/smart/export", params={"format": "csv"}, headers=auth(user))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"].endswith('.zip"')
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    assert archive.namelist() == ["recovery.csv", "sleep.csv", "cycle.csv", "workout.csv"]
    tables = {
        name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
        for name in archive.namelist()
    }
    for data_type in DataType:
        header = next(csv.reader(io.StringIO(archive.read(f"{data_type.value}.csv").decode())))
        assert header == [*exports.COLUMNS[data_type], "record"]
        rows = tables[f"{data_type.value}.csv"]
        expected = made[data_type] + ([pending] if data_type is DataType.SLEEP else [])
        assert sorted(orjson.loads(r["record"])["updated_at"] for r in rows) == sorted(
            o["updated_at"] for o in expected
        )
        for row in rows:
            record = orjson.loads(row["record"])
            assert row["user_id"] == str(record["user_id"])
            assert row["updated_at"] == record["updated_at"]
    sleeps = {row["id"]: row for row in tables["sleep.csv"]}
    scored = sleeps[made[DataType.SLEEP][0]["id"]]
    assert scored["score.stage_summary.total_in_bed_time_milli"] == "30272735"
    assert scored["score.sleep_needed.need_from_recent_nap_milli"] == "-12312"
    assert scored["score.respiratory_rate"] == "16.11328125"
    assert scored["nap"] == "false"
    assert scored["v1_id"] == ""  # a field WHOOP did not send is an empty cell
    unscored = sleeps[pending["id"]]
    assert unscored["score_state"] == "PENDING_SCORE"
    assert unscored["score.respiratory_rate"] == ""
    workout = tables["workout.csv"][0]
    assert workout["score.zone_durations.zone_zero_milli"] != ""
    assert workout["sport_name"] == "running"
    cycle = next(r for r in tables["cycle.csv"] if r["id"] == str(made[DataType.CYCLE][0]["id"]))
    assert cycle["score.strain"] == "5.2951527"
    assert cycle["start"] == made[DataType.CYCLE][0]["start"]
    recovery = tables["recovery.csv"][0]
    assert recovery["score.user_calibrating"] == "false"
    assert recovery["score.recovery_score"] == "44.0"


def _schema_columns(schemas: dict[str, Any], name: str, prefix: str = "") -> list[str]:
    columns: list[str] = []
    for field, spec in schemas[name]["properties"].items():
        if "$ref" in spec:
            columns += _schema_columns(
                schemas, spec["$ref"].rsplit("/", 1)[-1], f"{prefix}{field}."
            )
        else:
            columns.append(f"{prefix}{field}")
    return columns


@pytest.mark.parametrize(
    ("data_type", "schema"),
    [
        (DataType.RECOVERY, "Recovery"),
        (DataType.SLEEP, "Sleep"),
        (DataType.CYCLE, "Cycle"),
        (DataType.WORKOUT, "WorkoutV2"),
    ],
)
def test_csv_columns_are_the_fields_of_whoops_schema(data_type: DataType, schema: str) -> None:
    schemas = load_document()["components"]["schemas"]
    assert list(exports.COLUMNS[data_type]) == _schema_columns(schemas, schema)


async def test_an_unknown_format_is_422(app: FastAPI, client: httpx.AsyncClient) -> None:
    user, _ = await connect_user(app)
    answer = await client.get("/api/v1/smart/export", params={"format": "xml"}, headers=auth(user))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


async def test_a_user_never_connected_is_404_and_a_bearer_is_needed(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/v1/smart/export", headers=auth(uuid.uuid4()))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_connected"
    assert (await client.get("/api/v1/smart/export")).status_code == 401


async def test_a_disconnected_user_still_exports_the_records_kept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user, _ = await seed_user(app, 2, first_cycle=4_000_000)
    async with state_of(app).session_factory() as session:
        await ConnectionRepository(session).forget_tokens(user)
        await session.commit()
    answer = await client.get("/api/v1/smart/export", headers=auth(user))
    assert answer.status_code == 200
    assert len(jsonl_lines(answer)) == 8
