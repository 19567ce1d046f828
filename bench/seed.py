"""Data the measurements start from: WHOOP-shaped records and users seeded through the
product's own repositories (so the rows are exactly what the product writes)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.infra import asyncpg_url
from common.db.engine import create_engine, create_session_factory
from common.db.repositories.connections import ConnectionRepository
from common.db.repositories.records import RecordRepository
from common.db.repositories.sync_log import Attempt, SyncLogRepository
from common.types import DataType, SyncStatus, Trigger


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def sleep_record(whoop_user_id: int, day: int, rng: random.Random) -> dict[str, Any]:
    """A scored WHOOP v2 sleep `day` days ago, shaped like the OpenAPI document's example."""
    start = datetime.now(UTC).replace(hour=22, minute=0, second=0, microsecond=0) - timedelta(
        days=day + 1, minutes=rng.randint(0, 120)
    )
    end = start + timedelta(minutes=rng.randint(360, 540))
    in_bed = int((end - start).total_seconds() * 1000)
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "cycle_id": 93845000 + whoop_user_id * 100 + day,
        "v1_id": rng.randint(10**6, 10**7),
        "user_id": whoop_user_id,
        "created_at": _iso(end + timedelta(minutes=5)),
        "updated_at": _iso(end + timedelta(minutes=30)),
        "start": _iso(start),
        "end": _iso(end),
        "timezone_offset": "-05:00",
        "nap": False,
        "score_state": "SCORED",
        "score": {
            "stage_summary": {
                "total_in_bed_time_milli": in_bed,
                "total_awake_time_milli": rng.randint(10**6, 3 * 10**6),
                "total_no_data_time_milli": 0,
                "total_light_sleep_time_milli": rng.randint(10**7, 15 * 10**6),
                "total_slow_wave_sleep_time_milli": rng.randint(5 * 10**6, 8 * 10**6),
                "total_rem_sleep_time_milli": rng.randint(5 * 10**6, 8 * 10**6),
                "sleep_cycle_count": rng.randint(3, 6),
                "disturbance_count": rng.randint(5, 20),
            },
            "sleep_needed": {
                "baseline_milli": 27395716,
                "need_from_sleep_debt_milli": rng.randint(0, 10**6),
                "need_from_recent_strain_milli": rng.randint(0, 10**6),
                "need_from_recent_nap_milli": 0,
            },
            "respiratory_rate": round(rng.uniform(14, 18), 6),
            "sleep_performance_percentage": rng.randint(60, 100),
            "sleep_consistency_percentage": rng.randint(60, 100),
            "sleep_efficiency_percentage": round(rng.uniform(80, 98), 6),
        },
    }


async def seed_cached_reader(database: str, records: int = 30) -> uuid.UUID:
    """One connected user with `records` sleeps and a sync log fresh as of now; returns the user."""
    user_id = uuid.uuid4()
    whoop_user_id = 424242
    rng = random.Random(7)
    engine = create_engine(asyncpg_url(database))
    try:
        async with create_session_factory(engine)() as session:
            await ConnectionRepository(session).save(
                user_id=user_id,
                whoop_user_id=whoop_user_id,
                access_token_enc="unused-by-cached-reads",
                refresh_token_enc=None,
                expires_at=datetime.now(UTC) + timedelta(days=1),
                scopes="read:sleep offline",
            )
            sleeps = [sleep_record(whoop_user_id, day, rng) for day in range(records)]
            await RecordRepository(session, DataType.SLEEP).upsert(user_id, sleeps)
            await SyncLogRepository(session).record(
                Attempt(
                    user_id=user_id,
                    data_type=DataType.SLEEP,
                    trigger=Trigger.BACKFILL,
                    status=SyncStatus.SUCCESS,
                    records=records,
                    started_at=datetime.now(UTC),
                    duration_ms=1,
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    return user_id
